package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/loteria-nacional/tp0/central"
)

// The README's table of the central's keys states the defaults this
// command has (a default changed here without the README fails), and the
// AGENCIES bound the library enforces.
func TestReadmeStatesTheDefaults(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	for _, d := range defaults {
		got, ok := rows[d.Key]
		if !ok {
			if !strings.HasPrefix(d.Key, "TLS_") || d.Key == "TLS_REQUIRED" || d.Key == "TLS_DENY_SERIALS" {
				t.Errorf("README has no row for %s", d.Key)
			}
			continue
		}
		if d.Value != "" && !strings.HasPrefix(got, d.Value) {
			t.Errorf("README says %s defaults to %q; the code says %q", d.Key, got, d.Value)
		}
	}
	if want := "1..10,000"; central.MaxAgencies != 10000 || !strings.Contains(string(b), want) {
		t.Errorf("README's AGENCIES bound is not %d", central.MaxAgencies)
	}
}
