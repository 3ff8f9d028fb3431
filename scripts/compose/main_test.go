package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"OK", []string{filepath.Join(dir, "ok.yaml"), "3"}, true},
		{"OKYml", []string{filepath.Join(dir, "ok.yml"), "0"}, true},
		{"OKSingleBet", []string{"-single-bet", filepath.Join(dir, "single.yaml"), "2"}, true},
		{"OKExercise", []string{"-exercise", "ej5", filepath.Join(dir, "ej5.yaml"), "1"}, true},
		{"OKOverride", []string{"-override", "-tls", "-admin-port", "8081", filepath.Join(dir, "o.yaml"), "2"}, true},
		{"OKReplicasAfter", []string{filepath.Join(dir, "r.yaml"), "2", "--replicas", "3"}, true},
		{"ErrReplicasEven", []string{filepath.Join(dir, "r2.yaml"), "2", "--replicas", "2"}, false},
		{"ErrExercise", []string{"-exercise", "ej9", filepath.Join(dir, "ej9.yaml"), "1"}, false},
		{"ErrAdminPort", []string{"-override", "-admin-port", "0", filepath.Join(dir, "p.yaml"), "1"}, false},
		{"ErrMissing", []string{filepath.Join(dir, "a.yaml")}, false},
		{"ErrExtra", []string{filepath.Join(dir, "b.yaml"), "1", "2"}, false},
		{"ErrNotNumber", []string{filepath.Join(dir, "c.yaml"), "tres"}, false},
		{"ErrNegative", []string{filepath.Join(dir, "d.yaml"), "-1"}, false},
		{"ErrExtension", []string{filepath.Join(dir, "e.txt"), "1"}, false},
		{"ErrNoDir", []string{filepath.Join(dir, "nope", "f.yaml"), "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, io.Discard)
			if (err == nil) != tt.ok {
				t.Fatalf("run(%q) = %v", tt.args, err)
			}
			for _, path := range tt.args {
				if !tt.ok && strings.HasPrefix(path, dir) {
					if _, err := os.Stat(path); !os.IsNotExist(err) {
						t.Fatalf("%s was written despite the error", path)
					}
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

// client returns agency id's block of a compose file.
func client(t *testing.T, compose string, id string) string {
	t.Helper()
	i := strings.Index(compose, "\n  client"+id+":\n")
	if i < 0 {
		t.Fatalf("no client%s in:\n%s", id, compose)
	}
	block := compose[i+1:]
	if j := strings.Index(block[1:], "\n  client"); j >= 0 {
		block = block[:j+1]
	} else if j := strings.Index(block, "\nnetworks:"); j >= 0 {
		block = block[:j]
	}
	return block
}

// --help alone is the usage with exit 0 (errHelp); beside other
// arguments it is an error (exit 2), as an unknown flag is.
func TestRun_Help(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"-exercise", "main", "--help"}} {
		if err := run(args, io.Discard); !errors.Is(err, errHelp) {
			t.Errorf("run(%q) = %v, want the usage", args, err)
		}
	}
	for _, args := range [][]string{{"--help", "x"}, {"out.yaml", "3", "--help"}, {"--single-bet", "--help"}, {"-exercise", "main", "--help", "x"}} {
		if err := run(args, io.Discard); err == nil || errors.Is(err, errHelp) {
			t.Errorf("run(%q) = %v, want an error", args, err)
		}
	}
}

func TestCompose(t *testing.T) {
	t.Parallel()
	if first, again := Compose(Spec{Agencies: 5, Exercise: "main"}), Compose(Spec{Agencies: 5, Exercise: "main"}); first != again {
		t.Fatal("output is not deterministic")
	}
	c := Compose(Spec{Agencies: 3, Exercise: "main"})
	for _, want := range []string{
		"container_name: server", "container_name: client1", "container_name: client3", "CLI_ID=3",
		"AGENCIES=3", "subnet: 172.25.125.0/24", "testing_net:", "image: client:latest",
		"./server/config.ini:/config.ini:ro", "./client/config.yaml:/config.yaml:ro",
		"./.data:/.data:ro", "DB_PATH=/tmp/bets.db", "condition: service_healthy", "healthcheck:",
		"CLI_START_DELAY=" + StartDelay, "ADMIN_ADDR=\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("compose for 3 lacks %q", want)
		}
	}
	// The course's file keeps the store in the container: each of the
	// course's tests, one compose up after another's down, begins a new
	// round (a round of exercise 5 left on the host once made exercise 6's
	// agency meet bets that were not its own).
	if strings.Contains(c, "./.data/server") {
		t.Error("the course's compose file keeps the store on the host")
	}
	// The course's file publishes no host port: a busy port on the grader's
	// machine must not fail docker compose up.
	if strings.Contains(c, "ports:") || strings.Contains(c, "8080") {
		t.Error("the course's compose file publishes a port")
	}
	if strings.Contains(c, "client4") || strings.Contains(Compose(Spec{Exercise: "main"}), "client1") {
		t.Error("wrong number of clients")
	}
	// A mount of a file that does not exist makes Docker create a directory
	// in its place; agencies mount only the .data folder, which is versioned.
	if strings.Contains(c, ".csv:") {
		t.Error("compose mounts an agency file: Docker creates a directory when it is missing")
	}
}

// Each exercise's agencies do what that exercise's suite expects.
func TestCompose_Exercises(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		spec        Spec
		data, bet   bool
		description string
	}{
		{Spec{Agencies: 2, Exercise: "main"}, true, false, "agency-N.csv"},
		{Spec{Agencies: 2, Exercise: "main", SingleBet: true}, false, true, "single bet"},
		{Spec{Agencies: 2, Exercise: "ej1"}, false, false, "echo loop"},
		{Spec{Agencies: 2, Exercise: "ej4"}, false, false, "echo loop"},
		{Spec{Agencies: 2, Exercise: "ej5"}, false, true, "single bet"},
		{Spec{Agencies: 2, Exercise: "ej6"}, true, false, "agency-N.csv"},
		{Spec{Agencies: 2, Exercise: "ej8"}, true, false, "agency-N.csv"},
	} {
		t.Run(tt.spec.Exercise+map[bool]string{true: "SingleBet"}[tt.spec.SingleBet], func(t *testing.T) {
			c := Compose(tt.spec)
			for _, id := range []string{"1", "2"} {
				b := client(t, c, id)
				if got := strings.Contains(b, "./.data:/.data:ro"); got != tt.data {
					t.Errorf("client%s mounts .data: %v, want %v\n%s", id, got, tt.data, b)
				}
				if got := strings.Contains(b, "NUMERO=7574") && strings.Contains(b, "DOCUMENTO=30904465"); got != tt.bet {
					t.Errorf("client%s has the statement's bet: %v, want %v\n%s", id, got, tt.bet, b)
				}
			}
			if !strings.Contains(tt.spec.Describe(), tt.description) {
				t.Errorf("described as %q", tt.spec.Describe())
			}
		})
	}
}

// The committed docker-compose-dev.yaml is what the generator writes for 5.
func TestCommittedComposeIsCurrent(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docker-compose-dev.yaml")
	if err != nil {
		t.Skip(err)
	}
	if string(b) != Compose(Spec{Agencies: 5, Exercise: "main"}) {
		t.Fatal("docker-compose-dev.yaml is stale: run ./generar-compose.sh docker-compose-dev.yaml 5")
	}
}

func TestOverride(t *testing.T) {
	t.Parallel()
	o := Override(OverrideSpec{Agencies: 2, TLS: true, AdminPort: 8081})
	for _, want := range []string{"TLS_REQUIRED=true", "./.data/pki/server.key:/pki/server.key:ro",
		"./.data/pki/agency-2.key:/pki/agency.key:ro", "- /.data/pki", "CLI_TLS_CERT=/pki/agency.crt",
		`"127.0.0.1:8081:8080"`, "ADMIN_ADDR=:8080", `"ADMIN_TOKEN=${TP0_ADMIN_TOKEN:?`, "CLI_START_DELAY=0s"} {
		if !strings.Contains(o, want) {
			t.Errorf("override lacks %q", want)
		}
	}
	// Each agency mounts its own key and no other.
	for _, block := range strings.Split(o, "\n  client")[1:] {
		id := block[:strings.Index(block, ":")]
		if strings.Count(block, ".key:/pki/") != 1 || !strings.Contains(block, "agency-"+id+".key") {
			t.Errorf("client%s mounts keys other than its own:\n%s", id, block)
		}
	}
	if plain := Override(OverrideSpec{Agencies: 2, AdminPort: 8080}); strings.Contains(plain, "TLS_") || !strings.Contains(plain, "CLI_START_DELAY=0s") {
		t.Errorf("the plaintext override:\n%s", plain)
	}
}

// A national network: 1,000 agencies get a subnet with room for them.
func TestComposeLarge(t *testing.T) {
	t.Parallel()
	if Subnet(252) != "172.25.125.0/24" || Subnet(253) != "172.25.0.0/16" {
		t.Fatalf("subnets: %s for 252, %s for 253", Subnet(252), Subnet(253))
	}
	c := Compose(Spec{Agencies: 1000, Exercise: "main"})
	if strings.Count(c, "container_name: client") != 1000 || !strings.Contains(c, "container_name: client1000") ||
		!strings.Contains(c, "subnet: 172.25.0.0/16") || !strings.Contains(c, "AGENCIES=1000") {
		t.Fatal("compose for 1,000 agencies is incomplete")
	}
}

// --replicas 3: the course's server container is node 1, beside central2
// and central3, and agencies know all three.
func TestCompose_Replicas(t *testing.T) {
	t.Parallel()
	c := Compose(Spec{Agencies: 2, Exercise: "main", Replicas: 3})
	for _, want := range []string{"container_name: server", "container_name: central2", "container_name: central3",
		"CLUSTER_NODES=1=server:12345,2=central2:12345,3=central3:12345", "CLUSTER_NODE_ID=3",
		"CLI_SERVER_ADDRESS=server:12345,central2:12345,central3:12345", "nc -w 2 central3"} {
		if !strings.Contains(c, want) {
			t.Errorf("compose with 3 replicas lacks %q", want)
		}
	}
	o := Override(OverrideSpec{Agencies: 2, Replicas: 3, TLS: true, AdminPort: 8080})
	for _, want := range []string{"./.data/pki/central-1.crt:/pki/server.crt:ro", "  central3:\n", "./.data/pki/central-3.key:/pki/server.key:ro",
		"DB_PATH=/data/node-2/bets.db"} {
		if !strings.Contains(o, want) {
			t.Errorf("override with 3 replicas lacks %q", want)
		}
	}
}
