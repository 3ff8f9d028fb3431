package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A rolling upgrade mid-round: three nodes of COMPATIBILITY's build take a
// round from an agency of that build and one of this build; the followers,
// then the leader, are stopped cleanly and started again on their folders
// with this build while both agencies stream; each rebuilds its store from
// its snapshot and log (the old clean marker has no checksum to trust the
// file by). The cluster's version stays
// at 1 while an old node is a member, then the leader raises it; a third
// agency (this build), started once every node runs this build, holds the
// draw back until then. The round ends exactly: every bet once, the
// winners, the same store on every replica, the new agencies' histories
// linearizable. Then the old build, started again on an upgraded node's
// folder, stops with a line instead of serving what it cannot read.
func TestUpgrade_Rolling(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("rolling upgrade skipped in -short mode")
	}
	old := buildCompatible(t)
	data := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(filepath.Join(binDir, "gendata"), "-out", data, "-agencies", "3", "-bets", "60000", "-seed", "5").CombinedOutput(); err != nil {
		t.Fatalf("gendata: %v\n%s", err, out)
	}

	pc := newProcessCluster(t, 3, "")
	pc.bin = map[int]string{0: old.server, 1: old.server, 2: old.server}
	for i := range pc.procs {
		pc.start(i)
	}
	lead := pc.leader(-1)
	h := newHistories(t)
	agency := func(id int, bin string, env ...string) *proc {
		env = append([]string{"CLI_SERVER_ADDRESS=" + strings.Join(pc.addrs, ","), "CLI_BATCH_WINDOW=1", "CLI_BATCH_MAXAMOUNT=20"}, env...)
		return startAgencyIn(t, nil, bin, pc.procs[lead], id, data, env...)
	}
	agencies := []*proc{nil, agency(1, old.agency), agency(2, "agency", h.env(2)), nil}
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)

	version := regexp.MustCompile(`action: cluster_version \| result: success \| nodo: \d+ \| version: 2`)
	raised := func() bool {
		for _, i := range pc.live() {
			if len(pc.procs[i].grep(version.String())) > 0 {
				return true
			}
		}
		return false
	}
	upgrade := func(i int) {
		c := pc.procs[i]
		c.signal(syscall.SIGTERM)
		if code := c.wait(time.Minute); code != 0 {
			t.Fatalf("old node %d exited %d at a clean stop", i+1, code)
		}
		delete(pc.bin, i)
		pc.start(i)
		if len(pc.procs[i].grep(`action: cluster_start \| result: in_progress \| nodo: \d+ \| almacen: reconstruido`)) == 0 {
			t.Fatalf("node %d, upgraded, did not rebuild the old build's store (its clean marker has no checksum)", i+1)
		}
		t.Logf("node %d runs this build: %s", i+1, strings.Join(pc.procs[i].grep(`action: (open_store|store_\w+|cluster_start) `), "; "))
	}
	for i := range pc.procs {
		if i == lead {
			continue
		}
		target, _ := pc.applied(lead)
		upgrade(i)
		if !poll(time.Minute, func() bool { a, ok := pc.applied(i); return ok && a >= target }) {
			t.Fatalf("upgraded node %d did not catch up to index %d within a minute", i+1, target)
		}
		if raised() {
			t.Fatal("the cluster's version was raised while an old node is a member")
		}
	}
	for _, a := range agencies[1:3] {
		select {
		case <-a.done:
			t.Fatalf("an agency ended before the last upgrade:\n%s", a.output())
		default:
		}
	}
	upgrade(lead)
	if !poll(time.Minute, raised) {
		t.Fatal("every node runs this build, and no leader raised the cluster's version within a minute")
	}
	agencies[3] = agency(3, "agency", h.env(3))
	waitAgencies(t, agencies, expectedWinners(t, data, 3))
	pc.waitApplied()
	pc.compareStores(t, data)
	h.checkAgencies(t, data, 2, 3)

	pc.bin[0] = old.server
	p := pc.launch(0)
	if code := p.wait(time.Minute); code == 0 {
		t.Fatalf("the old build served an upgraded node's folder:\n%s", p.output())
	}
	fails := p.grep(`result: fail`)
	if len(fails) == 0 {
		t.Fatalf("the old build stopped on an upgraded node's folder without a fail line:\n%s", p.output())
	}
	t.Logf("the old build on an upgraded folder: %s", fails[len(fails)-1])
}

// compatible is the build COMPATIBILITY names: its server and agency.
type compatible struct{ server, agency string }

// buildCompatible builds COMPATIBILITY's commit from a git worktree of this
// clone. Without git or the commit (a shallow clone, a tarball), it skips
// with one line, unless TP0_REQUIRE_UPGRADE=1 (CI, on a full clone).
func buildCompatible(t *testing.T) compatible {
	t.Helper()
	skip := func(why string) {
		t.Helper()
		if os.Getenv("TP0_REQUIRE_UPGRADE") == "1" {
			t.Fatalf("%s; TP0_REQUIRE_UPGRADE=1 requires it", why)
		}
		t.Skipf("rolling upgrade skipped: %s", why)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	commit := compatibilityCommit(t, filepath.Join(root, "COMPATIBILITY"))
	if _, err := exec.LookPath("git"); err != nil {
		skip("needs git")
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		skip("COMPATIBILITY's commit " + commit + " is not in this clone: " + strings.TrimSpace(string(out)))
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", src, commit).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("git", "-C", root, "worktree", "remove", "--force", src).Run()
		exec.Command("git", "-C", root, "worktree", "prune").Run()
	})
	b := compatible{server: filepath.Join(dir, "server-"+commit[:7]), agency: filepath.Join(dir, "agency-"+commit[:7])}
	for out, pkg := range map[string]string{b.server: "./server", b.agency: "./cmd/agency"} {
		// -race: the dependencies this run's binaries compiled are reused.
		cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
		cmd.Dir = src
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s at %s: %v\n%s", pkg, commit, err, o)
		}
	}
	return b
}

// compatibilityCommit reads the commit a COMPATIBILITY file names: its
// first line that is not blank or a # comment.
func compatibilityCommit(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(line) {
			t.Fatalf("%s: %q is not a full commit hash", path, line)
		}
		return line
	}
	t.Fatalf("%s names no commit", path)
	return ""
}
