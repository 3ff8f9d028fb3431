package agency

import (
	"errors"
	"strings"
	"testing"
)

func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	ok := NewOptions()
	ok.ID = 1
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with an ID: %v", err)
	}
	for _, tt := range []struct {
		name   string
		edit   func(*Options)
		naming []string
	}{
		// A zero window once made an agency with bets send Finish{Total: 0}
		// before any batch.
		{"ErrBatchWindowZero", func(o *Options) { o.BatchWindow = 0 }, []string{"BatchWindow = 0"}},
		{"ErrNoID", func(o *Options) { o.ID = 0 }, []string{"ID = 0"}},
		{"ErrAddress", func(o *Options) { o.ServerAddress = "server" }, []string{"ServerAddress"}},
		{"ErrEveryField", func(o *Options) { *o = Options{} }, []string{"ID", "ServerAddress", "ServerTimeout", "BatchMaxAmount", "BatchWindow", "Logger"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
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
			if _, nerr := NewWithBets(o, nil); nerr == nil {
				t.Error("NewWithBets took options that do not validate")
			}
			if _, nerr := New(o, func(string) string { return "" }); !errors.Is(nerr, err) && nerr == nil {
				t.Error("New took options that do not validate")
			}
		})
	}
}
