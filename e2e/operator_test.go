package e2e

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

// runBin runs a binary with args and returns its exit code, stdout and stderr.
func runBin(t *testing.T, name string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0"}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// --help prints usage and exits 0; an unknown argument exits 2; --version.
func TestOperator_CommandLine(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"server", "agency"} {
		if code, out, _ := runBin(t, bin, nil, "--help"); code != 0 || !strings.HasPrefix(out, "usage: "+bin) {
			t.Errorf("%s --help: exit %d\n%s", bin, code, out)
		}
		if code, out, _ := runBin(t, bin, nil, "--version"); code != 0 || !strings.HasPrefix(out, bin+" ") {
			t.Errorf("%s --version: exit %d\n%s", bin, code, out)
		}
		if code, _, errOut := runBin(t, bin, nil, "--bogus"); code != 2 || !strings.Contains(errOut, `unknown argument "--bogus"`) {
			t.Errorf("%s --bogus: exit %d\n%s", bin, code, errOut)
		}
	}
	// The central's --help does not start it (it once listened on 0.0.0.0:12345).
	if _, out, _ := runBin(t, "server", []string{"SERVER_PORT=0"}, "--help"); strings.Contains(out, "action: listen") {
		t.Fatal("server --help started the central")
	}
}

// server export writes the course's bets.csv and the winners from a store,
// read-only; while a central holds the store it says so within seconds.
func TestOperator_Export(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 2)
	// While the central runs: a clear refusal, not a hang.
	startAt := time.Now()
	code, _, errOut := runBin(t, "server", nil, "export", "--db", db, "--csv", filepath.Join(t.TempDir(), "x.csv"))
	if code != 1 || !strings.Contains(errOut, "a central is running on "+db) || time.Since(startAt) > time.Minute {
		t.Fatalf("export of a held store: exit %d after %s\n%s", code, time.Since(startAt), errOut)
	}
	agencies := []*proc{nil, startAgency(t, c, 1, genData), startAgency(t, c, 2, genData)}
	want := expectedWinners(t, genData, 2)
	waitAgencies(t, agencies, want)
	c.signal(sigterm)
	c.wait(time.Minute)

	dir := t.TempDir()
	csvPath, winCSV, winJSON := filepath.Join(dir, "bets.csv"), filepath.Join(dir, "winners.csv"), filepath.Join(dir, "winners.json")
	if code, _, errOut := runBin(t, "server", nil, "export", "--db", db, "--csv", csvPath, "--winners", winCSV); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runBin(t, "server", nil, "export", "--db", db, "--winners", winJSON); code != 0 {
		t.Fatalf("export json: exit %d\n%s", code, errOut)
	}
	s, err := store.Open(db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var direct bytes.Buffer
	if err := s.Export(&direct); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got, _ := os.ReadFile(csvPath); !bytes.Equal(got, direct.Bytes()) || len(got) == 0 {
		t.Fatalf("bets.csv (%d bytes) is not the store's export (%d bytes)", len(got), direct.Len())
	}
	f, _ := os.Open(winCSV)
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || rows[0][0] != "agency" || rows[0][1] != "document" {
		t.Fatalf("winners.csv: %v %v", rows, err)
	}
	count := map[string]int{}
	for _, r := range rows[1:] {
		count[r[0]]++
	}
	var byAgency map[string][]string
	b, _ := os.ReadFile(winJSON)
	if err := json.Unmarshal(b, &byAgency); err != nil {
		t.Fatal(err)
	}
	for a, n := range map[string]int{"1": want[1], "2": want[2]} {
		if count[a] != n || len(byAgency[a]) != n {
			t.Errorf("agency %s: %d winners in CSV, %d in JSON, want %d", a, count[a], len(byAgency[a]), n)
		}
	}
	// Bad usage exits 2; an undrawn or missing store fails naming it.
	if code, _, _ := runBin(t, "server", nil, "export", "--db", db); code != 2 {
		t.Errorf("export without an output: exit %d", code)
	}
	if code, _, errOut := runBin(t, "server", nil, "export", "--db", filepath.Join(dir, "none.db"), "--csv", "-"); code != 1 || !strings.Contains(errOut, "none.db") {
		t.Errorf("export of a missing store: exit %d\n%s", code, errOut)
	}
}

// ARCHIVE_KEEP=1: each finished round is archived at the next start and
// only the newest archive stays.
func TestOperator_ArchiveRetention(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "bets.db")
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "agency-1.csv"), "Ana,Paz,1,1990-01-01,7574\nLuis,Sol,2,1980-02-02,1\n")
	for round := 1; round <= 3; round++ {
		c := startCentral(t, db, 1, "ARCHIVE_KEEP=1")
		a := startAgency(t, c, 1, data)
		if code := a.wait(time.Minute); code != 0 {
			t.Fatalf("round %d: agency exited %d", round, code)
		}
		c.signal(sigterm)
		c.wait(time.Minute)
		if round == 3 {
			c.waitLine(`action: borrar_archivo \| result: success \| archivo: .*bets-.*\.db \| conservar: 1`, time.Second)
		}
	}
	archives, err := store.Archives(db)
	if err != nil || len(archives) != 1 {
		t.Fatalf("archives %v (%v), want the newest one", archives, err)
	}
}
