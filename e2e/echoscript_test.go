package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDocker is a stand-in for the docker CLI: "inspect server" answers from
// FAKE_STATE (empty: no such container), "run ... sh -c CMD" logs its
// arguments to FAKE_LOG and runs CMD here, with FAKE_NC as its nc.
const fakeDocker = `#!/bin/sh
case "$1" in
inspect)
  [ -n "$FAKE_STATE" ] || exit 1
  case "$*" in
  *State.Running*) echo "$FAKE_STATE" ;;
  *Networks*) echo "tp0_testing_net " ;;
  esac ;;
run)
  echo "$*" >>"$FAKE_LOG"
  while [ $# -gt 1 ]; do shift; done
  PATH="$FAKE_NC:$PATH" sh -c "$1" ;;
*) exit 2 ;;
esac
`

// TestEchoScript runs validar-echo-server.sh under each POSIX shell found
// (dash is the sh the course uses) against a stand-in docker: a healthy echo
// succeeds, an answer that differs, a stopped or a missing server fail.
func TestEchoScript(t *testing.T) {
	script, err := filepath.Abs("../validar-echo-server.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	writeExec(t, filepath.Join(bin, "docker"), fakeDocker)
	healthy, unhealthy := t.TempDir(), t.TempDir()
	writeExec(t, filepath.Join(healthy, "nc"), "#!/bin/sh\ncat\n")
	writeExec(t, filepath.Join(unhealthy, "nc"), "#!/bin/sh\nprintf 'error reading data: '\ncat\n")
	shells := 0
	for _, sh := range []string{"dash", "bash", "busybox"} {
		path, err := exec.LookPath(sh)
		if err != nil {
			continue
		}
		shells++
		for _, tt := range []struct {
			name, state, nc, want string
		}{
			{"Healthy", "true", healthy, "success"},
			{"Unhealthy", "true", unhealthy, "fail"},
			{"Stopped", "false", healthy, "fail"},
			{"Missing", "", healthy, "fail"},
		} {
			t.Run(sh+"/"+tt.name, func(t *testing.T) {
				log := filepath.Join(t.TempDir(), "docker.log")
				args := []string{script}
				if sh == "busybox" {
					args = []string{"sh", script}
				}
				cmd := exec.Command(path, args...)
				cmd.Dir = t.TempDir() // the script finds server/config.ini beside itself, not here
				cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_STATE=" + tt.state, "FAKE_NC=" + tt.nc, "FAKE_LOG=" + log}
				out, err := cmd.CombinedOutput()
				if got := strings.TrimSpace(string(out)); got != "action: test_echo_server | result: "+tt.want {
					t.Fatalf("printed %q (%v)", got, err)
				}
				if (err == nil) != (tt.want == "success") {
					t.Fatalf("exit status %v for %s", err, tt.want)
				}
				if tt.state == "true" {
					run, _ := os.ReadFile(log)
					if !strings.Contains(string(run), "run --rm --network tp0_testing_net busybox:latest") || !strings.Contains(string(run), "nc -w 5 server 12345") {
						t.Fatalf("docker run called as %q", run)
					}
				}
			})
		}
	}
	if shells == 0 || !hasShell("dash") && os.Getenv("TP0_REQUIRE_DOCKER") == "1" {
		t.Fatal("no dash to run the script as the course does (apt-get install dash)")
	}
}

func hasShell(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func writeExec(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
