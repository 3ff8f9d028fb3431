package pki

import (
	"errors"
	"math/big"
	"slices"
	"testing"
)

func TestParseSerials(t *testing.T) {
	t.Parallel()
	n, _ := new(big.Int).SetString("10A4F3C2B1", 16)
	want := n.Text(16)
	for _, tt := range []struct {
		name, in string
		serials  []string
	}{
		{"OpenSSL", "serial=10A4F3C2B1", []string{want}},
		{"OpenSSLLowercaseKey", "SERIAL=10a4f3c2b1", []string{want}},
		{"ZeroX", "0x10a4f3c2b1", []string{want}},
		{"Colons", "10:A4:F3:C2:B1", []string{want}},
		{"LeadingZeros", "serial=0010A4F3C2B1", []string{want}},
		{"PlainHex", "10a4f3c2b1", []string{want}},
		{"DecimalBothReadings", "4660", []string{"4660", "1234"}},
		{"SameBothWays", "7", []string{"7"}},
		{"List", " serial=AB , 0xcd,ef ,", []string{"ab", "cd", "ef"}},
		{"Empty", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := ParseSerials(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			w := slices.Clone(tt.serials)
			slices.Sort(w)
			if !slices.Equal(keys, w) {
				t.Fatalf("%q read as %v, want %v", tt.in, keys, w)
			}
		})
	}
	for _, bad := range []string{"not-a-serial", "serial=", "0x", "10:A4F:3", "12 34", "serial=zz", "0x" + "1234567890123456789012345678901234567890ab"} {
		t.Run("Err/"+bad, func(t *testing.T) {
			if _, _, err := ParseSerials("ab," + bad); !errors.Is(err, ErrSerial) {
				t.Fatalf("%q: %v, want ErrSerial", bad, err)
			}
		})
	}
}
