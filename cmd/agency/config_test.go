package main

import (
	"cmp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The table of docs/configuration.md of the agency's keys states the defaults this command
// has, and what the shipped client/config.yaml changes is said there too.
func TestReadmeStatesTheDefaults(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z.A-Z]+)` \\| `CLI_[A-Z_]+` \\| ([^|]+) \\|").FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = strings.TrimSpace(m[2])
	}
	if len(rows) < 10 {
		t.Fatalf("docs/configuration.md's agency table: %d rows read", len(rows))
	}
	for _, d := range defaults {
		if got, ok := rows[d.Key]; ok && d.Value != "" && !strings.HasPrefix(got, d.Value) {
			t.Errorf("docs/configuration.md says %s defaults to %q; the code says %q", d.Key, got, d.Value)
		}
	}
	shipped, err := os.ReadFile("../../client/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"id": "1", "attempts": "10"} {
		if !regexp.MustCompile(`(?m)^\s*` + key + `: ` + want + `\b`).Match(shipped) {
			t.Errorf("client/config.yaml does not ship %s: %s, as the docs/configuration.md says", key, want)
		}
	}
	if !strings.Contains(rows["id"], "ships 1") || !strings.Contains(rows["reconnect.attempts"], "ships 10") {
		t.Errorf("docs/configuration.md does not say what client/config.yaml ships: %q, %q", rows["id"], rows["reconnect.attempts"])
	}
}

// --help lists every key with its environment variable and default.
func TestHelpListsEveryKey(t *testing.T) {
	t.Parallel()
	for _, d := range defaults {
		if d.Help == "" {
			t.Errorf("%s has no help text", d.Key)
		}
		line := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(d.Key) + ` +(\S+) +(\S+)`).FindStringSubmatch(usage)
		if line == nil {
			t.Errorf("--help does not list %s", d.Key)
			continue
		}
		if line[1] != envName(d.Key) {
			t.Errorf("--help names %s's variable %q, want %q", d.Key, line[1], envName(d.Key))
		}
		if want := cmp.Or(d.Value, "-"); line[2] != want {
			t.Errorf("--help shows %s's default as %q, want %q", d.Key, line[2], want)
		}
	}
}

// An agency with no id is told what is missing and how to set it.
func TestLoadConfig_NoID(t *testing.T) {
	_, err := loadConfig("", false)
	if err == nil || !strings.Contains(err.Error(), "the agency's id is not set") || !strings.Contains(err.Error(), "CLI_ID") {
		t.Fatalf("got %v, want the id named as missing with CLI_ID", err)
	}
}

// A key of config.yaml that no setting reads is refused, naming it and the
// setting it was likely meant to be (a misspelt server.address used to
// leave the default server:12345 without a word).
func TestLoadConfig_UnknownKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(path, []byte("id: 1\nserver:\n  adress: \"central:12345\"\nbatch:\n  maxAmount: 10\n"), 0o600)
	_, err := loadConfig(path, true)
	if want := `config key server.adress = "central:12345": is not a setting of config.yaml; did you mean server.address?`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}
