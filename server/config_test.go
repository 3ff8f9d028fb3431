package main

import (
	"cmp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loteria-nacional/tp0/central"
)

// The table of docs/configuration.md of the central's keys states the defaults this
// command has (a default changed here without the README fails), and the
// AGENCIES bound the library enforces.
func TestReadmeStatesTheDefaults(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/configuration.md")
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
				t.Errorf("docs/configuration.md has no row for %s", d.Key)
			}
			continue
		}
		if d.Value != "" && !strings.HasPrefix(got, d.Value) {
			t.Errorf("docs/configuration.md says %s defaults to %q; the code says %q", d.Key, got, d.Value)
		}
	}
	if want := "1..10,000"; central.MaxAgencies != 10000 || !strings.Contains(string(b), want) {
		t.Errorf("docs/configuration.md's AGENCIES bound is not %d", central.MaxAgencies)
	}
}

// The cluster's configuration is checked against itself, each bad key
// named: a node listens on the port CLUSTER_NODES gives it, names its own id
// (and is told how when it does not), joins only with CLUSTER_NODES, and a
// cluster of more than one node runs without mutual TLS only with
// CLUSTER_INSECURE=true.
func TestLoadConfig_Cluster(t *testing.T) {
	nodes := "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string // "" accepts
	}{
		{"Insecure", map[string]string{"SERVER_PORT": "7001", "CLUSTER_NODES": nodes, "CLUSTER_NODE_ID": "1", "CLUSTER_INSECURE": "true"}, ""},
		{"PlaintextRefused", map[string]string{"SERVER_PORT": "7001", "CLUSTER_NODES": nodes, "CLUSTER_NODE_ID": "1"}, "without mutual TLS"},
		{"OneNodePlaintext", map[string]string{"SERVER_PORT": "7001", "CLUSTER_NODES": "1=127.0.0.1:7001", "CLUSTER_NODE_ID": "1"}, ""},
		{"PortDiffers", map[string]string{"SERVER_PORT": "7009", "CLUSTER_NODES": nodes, "CLUSTER_NODE_ID": "1", "CLUSTER_INSECURE": "true"},
			`SERVER_PORT = "7009": CLUSTER_NODES names this node (1) at 127.0.0.1:7001`},
		{"NoNodeID", map[string]string{"SERVER_PORT": "7001", "CLUSTER_NODES": nodes, "CLUSTER_INSECURE": "true"}, "CLUSTER_NODE_ID = \"\": is not set: a node of CLUSTER_NODES"},
		{"NodeIDNotAMember", map[string]string{"SERVER_PORT": "7001", "CLUSTER_NODES": nodes, "CLUSTER_NODE_ID": "4", "CLUSTER_INSECURE": "true"}, "is not one of CLUSTER_NODES"},
		{"JoinWithoutNodes", map[string]string{"CLUSTER_JOIN": "true"}, "CLUSTER_JOIN"},
		{"LogStore", map[string]string{"CLUSTER_LOG_STORE": "sqlite"}, "CLUSTER_LOG_STORE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig("", false)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// --help lists every key the parser reads, with its default, and
// config_file says which file was read, or none.
func TestHelpListsEveryKey(t *testing.T) {
	t.Parallel()
	var out, errb strings.Builder
	if code := run([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exited %d: %s", code, errb.String())
	}
	for _, d := range defaults {
		if d.Help == "" {
			t.Errorf("%s has no help text", d.Key)
		}
		line := regexp.MustCompile(`(?m)^  ` + d.Key + ` +(\S+)`).FindStringSubmatch(out.String())
		if line == nil {
			t.Errorf("--help does not list %s", d.Key)
			continue
		}
		if want := cmp.Or(d.Value, "-"); line[1] != want {
			t.Errorf("--help shows %s's default as %q, want %q", d.Key, line[1], want)
		}
	}
	for _, sub := range []string{"export", "cluster", "round", "backup", "restore"} {
		if !strings.Contains(out.String(), "server "+sub) {
			t.Errorf("--help does not show the %s command", sub)
		}
	}
}

func TestLoadConfig_FileRead(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(filepath.Join(t.TempDir(), "config.ini"), false)
	if err != nil || cfg.File != "" {
		t.Fatalf("a missing config.ini: File %q, err %v; want none read", cfg.File, err)
	}
	cfg, err = loadConfig("config.ini", false) // server/config.ini, shipped
	if err != nil || cfg.File != "config.ini" {
		t.Fatalf("server/config.ini: File %q, err %v", cfg.File, err)
	}
}

// A key of config.ini that no setting reads is refused, naming it and the
// setting it was likely meant to be (a typo would otherwise leave the
// default in place without a word); so is a section no setting reads.
func TestLoadConfig_UnknownKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "config.ini")
	os.WriteFile(path, []byte("[DEFAULT]\nSERVR_PORT = 12346\nLOGGING_LEVEL = INFO\nBLAH = 1\n[other]\nSERVER_PORT = 2\n"), 0o600)
	_, err := loadConfig(path, true)
	for _, want := range []string{
		`config key SERVR_PORT = "12346": is not a setting of config.ini; did you mean SERVER_PORT?`,
		`config key BLAH = "1": is not a setting of config.ini`,
		`config key [other] server_port = "2": is not a setting of config.ini`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
