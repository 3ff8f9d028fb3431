package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"OK", []string{filepath.Join(dir, "ok.yaml"), "3"}, true},
		{"OKYml", []string{filepath.Join(dir, "ok.yml"), "0"}, true},
		{"ErrMissing", []string{filepath.Join(dir, "a.yaml")}, false},
		{"ErrExtra", []string{filepath.Join(dir, "b.yaml"), "1", "2"}, false},
		{"ErrNotNumber", []string{filepath.Join(dir, "c.yaml"), "tres"}, false},
		{"ErrNegative", []string{filepath.Join(dir, "d.yaml"), "-1"}, false},
		{"ErrExtension", []string{filepath.Join(dir, "e.txt"), "1"}, false},
		{"ErrNoDir", []string{filepath.Join(dir, "nope", "f.yaml"), "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if (err == nil) != tt.ok {
				t.Fatalf("run(%q) = %v", tt.args, err)
			}
			if !tt.ok && len(tt.args) > 0 {
				if _, err := os.Stat(tt.args[0]); !os.IsNotExist(err) {
					t.Fatalf("%s was written despite the error", tt.args[0])
				}
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temp file %s left behind", e.Name())
		}
	}
}

func TestCompose(t *testing.T) {
	if first, again := Compose(5), Compose(5); first != again {
		t.Fatal("output is not deterministic")
	}
	c := Compose(3)
	for _, want := range []string{
		"container_name: server", "container_name: client1", "container_name: client3", "CLI_ID=3",
		"AGENCIES=3", "subnet: 172.25.125.0/24", "testing_net:",
		"./server/config.ini:/config.ini:ro", "./agency/config.yaml:/config.yaml:ro",
		"./.data:/.data:ro", "./.data/server:/data", "condition: service_healthy", "healthcheck:", `"127.0.0.1:8080:8080"`,
	} {
		if !strings.Contains(c, want) {
			t.Errorf("compose for 3 lacks %q", want)
		}
	}
	if strings.Contains(c, "client4") || strings.Contains(Compose(0), "client1") {
		t.Error("wrong number of clients")
	}
	// A mount of a file that does not exist makes Docker create a directory
	// in its place; agencies mount only the .data folder, which is versioned.
	if strings.Contains(c, ".csv:") {
		t.Error("compose mounts an agency file: Docker creates a directory when it is missing")
	}
}

// The committed docker-compose-dev.yaml is what the generator writes for 5.
func TestCommittedComposeIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose-dev.yaml")
	if err != nil {
		t.Skip(err)
	}
	if string(b) != Compose(5) {
		t.Fatal("docker-compose-dev.yaml is stale: run ./generar-compose.sh docker-compose-dev.yaml 5")
	}
}

func TestTLSOverride(t *testing.T) {
	o := TLSOverride(2)
	for _, want := range []string{"TLS_REQUIRED=true", "./.data/pki/server.key:/pki/server.key:ro",
		"./.data/pki/agency-2.key:/pki/agency.key:ro", "- /.data/pki", "CLI_TLS_CERT=/pki/agency.crt"} {
		if !strings.Contains(o, want) {
			t.Errorf("TLS override lacks %q", want)
		}
	}
	// Each agency mounts its own key and no other.
	for _, block := range strings.Split(o, "\n  client")[1:] {
		id := block[:strings.Index(block, ":")]
		if strings.Count(block, ".key:/pki/") != 1 || !strings.Contains(block, "agency-"+id+".key") {
			t.Errorf("client%s mounts keys other than its own:\n%s", id, block)
		}
	}
	if err := run([]string{"-tls", filepath.Join(t.TempDir(), "tls.yaml"), "3"}); err != nil {
		t.Fatal(err)
	}
}

// A national network: 1,000 agencies get a subnet with room for them.
func TestComposeLarge(t *testing.T) {
	if Subnet(252) != "172.25.125.0/24" || Subnet(253) != "172.25.0.0/16" {
		t.Fatalf("subnets: %s for 252, %s for 253", Subnet(252), Subnet(253))
	}
	c := Compose(1000)
	if strings.Count(c, "container_name: client") != 1000 || !strings.Contains(c, "container_name: client1000") ||
		!strings.Contains(c, "subnet: 172.25.0.0/16") || !strings.Contains(c, "AGENCIES=1000") {
		t.Fatal("compose for 1,000 agencies is incomplete")
	}
}
