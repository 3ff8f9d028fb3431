package pki

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ErrSerial means a text is not a certificate serial number in any spelling
// ParseSerials accepts.
var ErrSerial = errors.New("not a certificate serial number")

// ParseSerials reads a comma-separated list of certificate serial numbers
// as people paste them, and returns the set of serials (in Serial's
// spelling: lowercase hex without leading zeros) and the list as read, for
// a config line. Each entry may be:
//
//	serial=10A4F3...   what `openssl x509 -serial -noout` prints (hex)
//	0x10a4f3...        hex with 0x
//	10:a4:f3:...       hex bytes separated by colons (`openssl x509 -text`)
//	10a4f3...          hex
//	1234567890         decimal (Go's big.Int.String); digits only are also
//	                   valid hex, so such an entry stands for both numbers
//	                   (serials are random 128-bit numbers: the other
//	                   reading revokes nothing real)
//
// Anything else fails with ErrSerial, naming the entry.
func ParseSerials(list string) (serials map[string]bool, shown []string, err error) {
	serials = map[string]bool{}
	for _, entry := range strings.Split(list, ",") {
		e := strings.TrimSpace(entry)
		if e == "" {
			continue
		}
		readings, err := parseSerial(e)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range readings {
			serials[n.Text(16)] = true
		}
		texts := make([]string, len(readings))
		for i, n := range readings {
			texts[i] = n.Text(16)
		}
		shown = append(shown, strings.Join(texts, "/"))
	}
	return serials, shown, nil
}

func parseSerial(e string) ([]*big.Int, error) {
	s := e
	if len(s) > 7 && strings.EqualFold(s[:7], "serial=") {
		s = s[7:]
		return oneHex(e, s)
	}
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		return oneHex(e, s[2:])
	}
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		for _, p := range parts {
			if len(p) < 1 || len(p) > 2 || !isHex(p) {
				return nil, fmt.Errorf("%w: %q (colon-separated hex bytes need 1 or 2 hex digits each)", ErrSerial, e)
			}
		}
		return oneHex(e, strings.Join(parts, ""))
	}
	if isDecimal(s) {
		dec, _ := new(big.Int).SetString(s, 10)
		hex, _ := new(big.Int).SetString(s, 16)
		if dec.Cmp(hex) == 0 {
			return []*big.Int{dec}, nil
		}
		return []*big.Int{hex, dec}, nil
	}
	return oneHex(e, s)
}

func oneHex(entry, s string) ([]*big.Int, error) {
	if s == "" || !isHex(s) || len(s) > 40 {
		return nil, fmt.Errorf("%w: %q (hex as openssl x509 -serial prints it, 0x..., aa:bb:..., or decimal)", ErrSerial, entry)
	}
	n, _ := new(big.Int).SetString(s, 16)
	return []*big.Int{n}, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func isDecimal(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
