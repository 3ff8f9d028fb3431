package central

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// A clock that reads before this program existed begins no round (a
// machine without a battery-backed clock once ran a 1970 round that
// discarded most rows as births in the future, and drew it).
func TestNew_ErrClock(t *testing.T) {
	t.Parallel()
	o := NewOptions()
	o.DBPath = filepath.Join(t.TempDir(), "bets.db")
	o.Now = func() time.Time { return time.Unix(0, 0) }
	c, err := New(o)
	if !errors.Is(err, ErrClock) || !strings.Contains(err.Error(), "1970-01-01T00:00:00Z") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("New with a 1970 clock: %v, want ErrClock naming the time", err)
	}
	if _, statErr := os.Stat(o.DBPath); !os.IsNotExist(statErr) {
		t.Fatal("a store was created on a wrong clock")
	}
}
