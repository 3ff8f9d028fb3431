package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Mistakes an operator makes get one clear line saying what to do, never a
// raw error or a silent default.
func TestHouse_ClearErrors(t *testing.T) {
	t.Parallel()
	t.Run("StoreFolderMissing", func(t *testing.T) {
		t.Parallel()
		db := filepath.Join(t.TempDir(), "no", "such", "folder", "bets.db")
		p := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=1", "DB_PATH="+db)
		if code := p.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d", code)
		}
		p.waitLine(`action: open_store \| result: fail .*the folder .*/no/such/folder does not exist \(create it, or set DB_PATH to a file in a folder that does\)`, time.Second)
	})
	t.Run("RestoreIntoAMissingFolder", func(t *testing.T) {
		t.Parallel()
		db := filepath.Join(t.TempDir(), "nope", "bets.db")
		out, err := runServer("restore", "--from", filepath.Join(t.TempDir(), "backup.db"), "--db", db)
		if err == nil || !strings.Contains(out, "does not exist: create it first (mkdir -p") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Fatalf("restore into a missing folder: %v\n%s", err, out)
		}
	})
	t.Run("SemicolonsInClusterNodes", func(t *testing.T) {
		t.Parallel()
		p := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=1", "DB_PATH="+filepath.Join(t.TempDir(), "bets.db"),
			"CLUSTER_NODES=1=127.0.0.1:1;2=127.0.0.1:2;3=127.0.0.1:3", "CLUSTER_NODE_ID=1", "CLUSTER_INSECURE=true")
		if code := p.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d", code)
		}
		p.waitLine(`action: config \| result: fail .*CLUSTER_NODES .*separate the nodes with commas`, time.Second)
	})
	t.Run("MisspeltKey", func(t *testing.T) {
		t.Parallel()
		ini := filepath.Join(t.TempDir(), "config.ini")
		os.WriteFile(ini, []byte("[DEFAULT]\nSERVR_PORT = 12399\n"), 0o600)
		p := start(t, "server", t.TempDir(), "SERVER_CONFIG="+ini, "DB_PATH="+filepath.Join(t.TempDir(), "bets.db"))
		if code := p.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d", code)
		}
		p.waitLine(`action: config \| result: fail \| error: config key SERVR_PORT = "12399": is not a setting of config.ini; did you mean SERVER_PORT\?`, time.Second)
		yaml := filepath.Join(t.TempDir(), "config.yaml")
		os.WriteFile(yaml, []byte("id: 1\nserver:\n  adress: \"central:1\"\n"), 0o600)
		a := start(t, "agency", t.TempDir(), "CLI_CONFIG="+yaml)
		if code := a.wait(30 * time.Second); code != 1 {
			t.Fatalf("the agency exited %d", code)
		}
		a.waitLine(`action: config \| result: fail \| error: config key server.adress = "central:1": is not a setting of config.yaml; did you mean server.address\?`, time.Second)
	})
}

// The operator's commands take the admin URL from TP0_ADMIN_URL, and a
// change sent to a follower is refused naming the leader's admin URL.
func TestHouse_AdminURLFromTheEnvironment(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 1, "")
	lead := pc.servingNode()
	follower := (lead + 1) % 3
	cmd := exec.Command(filepath.Join(binDir, "server"), "cluster", "list")
	cmd.Env = []string{"TP0_ADMIN_URL=" + pc.admin[lead], "ADMIN_TOKEN=" + adminToken}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "as node ") {
		t.Fatalf("cluster list with TP0_ADMIN_URL: %v\n%s", err, out)
	}
	// The follower learns the leader's admin URL from the leader's about
	// frame, once it has connected to it.
	var out string
	if !poll(time.Minute, func() bool {
		o, err := pc.command(follower, "round", "new")
		out = o
		return err != nil && strings.Contains(o, "its admin listener "+pc.admin[lead])
	}) {
		t.Fatalf("round new on a follower does not name the leader's admin URL %s:\n%s", pc.admin[lead], out)
	}
}
