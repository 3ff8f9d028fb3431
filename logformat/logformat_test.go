package logformat

import (
	"strings"
	"testing"
)

func TestValue(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"[CLIENT 1] Message N°3", "[CLIENT 1] Message N°3"},
		{"Tomàs Álvarez", "Tomàs Álvarez"},
		{"hi | action: sorteo | result: success | ganadores: 99", `hi \x7c action: sorteo \x7c result: success \x7c ganadores: 99`},
		{"a\nb\r\n", `a\nb\r\n`},
		{"bell\a esc\x1b[31m", `bell\x07 esc\x1b[31m`},
		{`back\slash`, `back\\slash`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"del\x7f", `del\x7f`},
		{"c1\u0085 ls\u2028", `c1\u0085 ls\u2028`},
		{"tab\t", `tab\t`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"\ufeff\u200bAna", `\ufeff\u200bAna`},
		{strings.Repeat("a", MaxValue+10), strings.Repeat("a", MaxValue) + "…[+10 bytes]"},
		{strings.Repeat("ñ", MaxValue), strings.Repeat("ñ", MaxValue/2) + "…[+512 bytes]"},
	}
	for _, tt := range tests {
		if got := Value(tt.in); got != tt.want {
			t.Errorf("Value(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzValue checks the property the log format relies on: whatever comes in,
// the value has no field separator and no line break or control character.
func FuzzValue(f *testing.F) {
	for _, s := range []string{"x", "a|b", "\n", "\xff\xfe", "N°1", "\u2028", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := Value(s)
		if strings.ContainsAny(v, "|\r\n\x1b\x07\x00\u2028\u2029\u0085\u202e\u200b\ufeff") || len(v) > 4*MaxValue+32 {
			t.Fatalf("Value(%q) = %q keeps a separator or control character", s, v)
		}
		for _, r := range v {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("Value(%q) = %q keeps control %U", s, v, r)
			}
		}
	})
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	if l, err := ParseLevel("debug"); err != nil || l.String() != "DEBUG" {
		t.Fatalf("ParseLevel(debug) = %v, %v", l, err)
	}
	if _, err := ParseLevel("LOUD"); err == nil || !strings.Contains(err.Error(), Levels) {
		t.Fatalf("ParseLevel(LOUD) = %v", err)
	}
}
