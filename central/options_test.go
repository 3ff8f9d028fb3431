package central

import (
	"strings"
	"testing"
)

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	if err := NewOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tt := range []struct {
		name   string
		edit   func(*Options)
		naming []string
	}{
		{"ErrAgencies", func(o *Options) { o.Agencies = MaxAgencies + 1 }, []string{"Agencies"}},
		{"ErrTLSRequired", func(o *Options) { o.TLSRequired = true }, []string{"TLSRequired"}},
		{"ErrEveryField", func(o *Options) { *o = Options{MaxConns: -1} }, []string{"Agencies", "DBPath", "IdleTimeout", "MaxConns", "Logger"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			tt.edit(&o)
			err := o.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.naming {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%v does not name %s", err, s)
				}
			}
			if c, nerr := New(o); nerr == nil {
				c.Close()
				t.Error("New took options that do not validate")
			}
		})
	}
}
