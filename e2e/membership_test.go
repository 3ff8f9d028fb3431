package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Changes an operator makes, and files an operator loses, never take the
// cluster down, mix two clusters or start a node that forgot its votes.

// A node whose log tail a new leader truncated ("clearing log suffix": it
// led, cut from the others, and appended entries nobody committed) is
// killed (-9) and restarts: it opens its log and catches up (raft-wal
// v0.4.0 could not reopen such a log: raft-wal#31).
func TestCluster_NodeWithATruncatedTailRestarts(t *testing.T) {
	clusterTest(t)
	cut := filepath.Join(t.TempDir(), "cut")
	os.WriteFile(cut, nil, 0o600)
	pc := newProcessCluster(t, 2, "")
	for i := range 3 {
		pc.env[i] = []string{"TP0_TEST_CUT_FILE=" + cut}
		pc.start(i)
	}
	lead := pc.leader(-1)
	agencies := pc.runAgencies(midData, "CLI_BATCH_WINDOW=4")
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	os.WriteFile(cut, []byte(strconv.Itoa(lead+1)+"\n"), 0o600) // the leader alone, its agencies still on it
	pc.leader(lead)
	pc.procs[lead].waitLine(`action: cluster_role \| result: success .*rol: follower`, time.Minute)
	os.WriteFile(cut, nil, 0o600)
	pc.procs[lead].waitLine(`msg: clearing log suffix`, time.Minute)
	pc.kill(lead)
	pc.start(lead)
	waitAgencies(t, agencies, expectedWinners(t, midData, 2))
	pc.waitApplied()
	pc.compareStores(t, midData)
}

// A node whose raft state is not whole refuses to start with one line that
// says what is missing and the safe procedure, never a panic and never a
// start as a node that never voted: its snapshots gone (the log compacted
// behind them), its log's segments gone, its whole raft folder gone.
func TestCluster_LostRaftStateIsRefused(t *testing.T) {
	clusterTest(t)
	pc := newProcessCluster(t, 2, "")
	for i := range 3 {
		pc.env[i] = []string{"TP0_TEST_COMPACT=1"} // a snapshot every 64 entries, the log compacted behind it
		pc.start(i)
	}
	waitAgencies(t, pc.runAgencies(genData), expectedWinners(t, genData, 2))
	pc.waitApplied()
	follower := (pc.leader(-1) + 1) % 3
	f := pc.procs[follower]
	f.signal(syscall.SIGTERM)
	if code := f.wait(time.Minute); code != 0 {
		t.Fatalf("the follower exited %d at a clean stop", code)
	}
	raftDir := pc.dbs[follower] + ".raft"
	saved := filepath.Join(t.TempDir(), "raft")
	copyTree(t, raftDir, saved)
	for _, tt := range []struct {
		name, want string
		lose       func()
	}{
		{"SnapshotsGone", `the entries before it are in no snapshot .* its snapshots are gone`, func() { os.RemoveAll(filepath.Join(raftDir, "snapshots")) }},
		{"LogSegmentsGone", `cannot read .*\.raft: .*(entries the node had are gone|\.wal: no such file or directory)`, func() {
			segs, _ := filepath.Glob(filepath.Join(raftDir, "wal", "*.wal"))
			for _, s := range segs {
				os.Remove(s)
			}
		}},
		{"LogAndStableStoreGone", `its log and stable store are not`, func() { os.RemoveAll(filepath.Join(raftDir, "wal")) }},
		{"RaftFolderGone", `holds the store of a replica of cluster .* holds no raft state: its log, term and vote are gone`, func() { os.RemoveAll(raftDir) }},
	} {
		os.RemoveAll(raftDir)
		copyTree(t, saved, raftDir)
		tt.lose()
		p := pc.launch(follower)
		if code := p.wait(time.Minute); code != 1 {
			t.Fatalf("%s: the node exited %d, want 1:\n%s", tt.name, code, p.output())
		}
		line := p.waitLine(`action: cluster_start \| result: fail`, time.Second)
		if !regexp.MustCompile(tt.want).MatchString(line) || !strings.Contains(line, "add it again under a new id") || strings.Contains(line, "…[+") {
			t.Errorf("%s: %s", tt.name, line)
		}
		noCrash(t, p)
	}
}

// copyTree copies the folder from to to.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The leader checks a node before it adds it: an address that does not
// answer, or does not resolve, or answers as another node, is refused, and
// so is a live voter's id at another address (unless re-addressed), each
// with the reason and exit 1; the cluster is as it was. A node added
// joins as a non-voter and is promoted once caught up; a node the leader
// does not hear from shows as unreachable.
func TestCluster_AddChecksTheNode(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 1, "")
	lead := pc.servingNode()
	dead := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"4", dead}, "node 4 at " + dead + " does not answer the replicas' handshake"},
		{[]string{"4", "nosuchhost.invalid:1"}, "nosuchhost.invalid does not resolve"},
		{[]string{"4", pc.addrs[(lead+1)%3]}, "is node " + strconv.Itoa((lead+1)%3+1) + "'s address"},
		{[]string{"3", dead}, "node 3 is a member at " + pc.addrs[2]},
	} {
		out, err := pc.command(lead, append([]string{"cluster", "add"}, tt.args...)...)
		if err == nil || !strings.Contains(out, tt.want) || !strings.Contains(out, "409") {
			t.Errorf("cluster add %v: %v\n%s", tt.args, err, out)
		}
	}
	// A node started to bootstrap a cluster of its own (not joining; its
	// peers not up) is not added.
	four := pc.addNode()
	pc.join[four] = false
	pc.env[four] = []string{fmt.Sprintf("CLUSTER_NODES=4=%s,5=%s,6=%s", pc.addrs[four], dead, "127.0.0.1:1")}
	p := pc.launch(four)
	p.waitLine(`action: cluster_start \| result: in_progress .*espera: node`, time.Minute)
	if out, err := pc.command(lead, "cluster", "add", "4", pc.addrs[four]); err == nil || !strings.Contains(out, "waits to bootstrap a new cluster: restart it with CLUSTER_JOIN=true") {
		t.Fatalf("adding a node that waits to bootstrap: %v\n%s", err, out)
	}
	p.cmd.Process.Kill()
	p.wait(time.Minute)
	os.RemoveAll(pc.dbs[four] + ".raft") // its bootstrap nonce: a joining node starts empty
	pc.join[four], pc.env[four] = true, nil
	pc.start(four)
	if out, err := pc.command(lead, "cluster", "add", "4", pc.addrs[four]); err != nil || !strings.Contains(out, "non-voter") {
		t.Fatalf("add 4: %v\n%s", err, out)
	}
	pc.waitList(lead, `(?m)^4 +`+regexp.QuoteMeta(pc.addrs[four])+` +voter +follower +yes`)
	victim := (lead + 1) % 3
	pc.kill(victim)
	pc.gone[victim] = true
	pc.waitList(lead, fmt.Sprintf(`(?m)^%d +\S+ +voter +unreachable +no`, victim+1))
	waitAgencies(t, pc.runAgencies(genData), expectedWinners(t, genData, 1))
	pc.waitApplied()
}

// A removal that would leave the voters unable to elect a leader with the
// nodes that answer now is refused (409, saying why), and the cluster goes
// on serving: the live follower of three, while the other is dead.
func TestCluster_NoRemovalBelowQuorum(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	lead := pc.servingNode()
	dead, live := (lead+1)%3, (lead+2)%3
	pc.kill(dead)
	pc.gone[dead] = true
	pc.waitList(lead, fmt.Sprintf(`(?m)^%d +\S+ +voter +unreachable`, dead+1))
	out, err := pc.command(lead, "cluster", "remove", strconv.Itoa(live+1))
	if err == nil || !strings.Contains(out, "409") || !strings.Contains(out, "would leave 2 voters of which 1 answer now") {
		t.Fatalf("removing the live follower beside a dead one: %v\n%s", err, out)
	}
	waitAgencies(t, pc.runAgencies(genData), expectedWinners(t, genData, 2))
	if out, err := pc.command(lead, "cluster", "list"); err != nil || !regexp.MustCompile(fmt.Sprintf(`(?m)^%d +\S+ +voter +follower`, live+1)).MatchString(out) {
		t.Fatalf("the live follower after the refusal: %v\n%s", err, out)
	}
	pc.waitApplied()
	pc.compareStores(t, genData)
}

// A node started on the folder of an earlier cluster at the same
// addresses is refused: it stops with one line saying so and what to do,
// and the live cluster, which it cannot join nor truncate, finishes its
// round.
func TestCluster_EarlierIncarnationIsRefused(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	waitAgencies(t, pc.runAgencies(genData), expectedWinners(t, genData, 2))
	pc.waitApplied()
	old := pc.status(0).Cluster.ID
	for i := range 3 {
		pc.procs[i].signal(syscall.SIGTERM)
		pc.procs[i].wait(time.Minute)
	}
	// The earlier cluster's node 3 keeps its folder; the new one starts
	// from empty folders at the same addresses.
	earlier := pc.dbs[2]
	for i := range 3 {
		pc.dbs[i] = filepath.Join(t.TempDir(), "bets.db")
		pc.start(i)
	}
	lead := pc.servingNode()
	if id := pc.status(lead).Cluster.ID; id == old {
		t.Fatalf("the new cluster has the earlier one's ID %s", id)
	}
	pc.procs[2].signal(syscall.SIGTERM)
	pc.procs[2].wait(time.Minute)
	pc.dbs[2] = earlier
	agencies := pc.runAgencies(genData)
	p := pc.launch(2)
	if code := p.wait(2 * time.Minute); code != 1 {
		t.Fatalf("the earlier cluster's node exited %d, want 1:\n%s", code, p.output())
	}
	p.waitLine(`action: cluster_start \| result: fail .*this node.s folder belongs to cluster `+old+`, but the nodes at 2 of its peers. addresses belong to cluster .* Move DB_PATH and DB_PATH.raft aside`, time.Second)
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	for i := range 2 {
		if n := len(pc.procs[i].grep(`clearing log suffix`)); n > 0 {
			t.Fatalf("node %d's log was truncated", i+1)
		}
	}
}

// A leader removed from the cluster, and a follower removed, stop with a
// line saying so and exit 0; the others go on.
func TestCluster_RemovedNodeStops(t *testing.T) {
	clusterTest(t)
	pc := newProcessClusterOf(t, 5, 2, "") // a cluster of five, bootstrapped together
	for i := range 5 {
		pc.start(i)
	}
	lead := pc.servingNode()
	follower := (lead + 1) % 5
	for _, i := range []int{follower, lead} {
		if out, err := pc.command(pc.servingNode(), "cluster", "remove", strconv.Itoa(i+1)); err != nil {
			t.Fatalf("remove %d: %v\n%s", i+1, err, out)
		}
		if code := pc.procs[i].wait(time.Minute); code != 0 {
			t.Fatalf("removed node %d exited %d:\n%s", i+1, code, pc.procs[i].output())
		}
		pc.procs[i].waitLine(`action: cluster_member \| result: success .*this node was removed from the cluster`, time.Second)
		pc.gone[i] = true
	}
	waitAgencies(t, pc.runAgencies(genData), expectedWinners(t, genData, 2))
}

// Five nodes from three: two nodes added as non-voters, promoted once
// caught up; then two nodes killed (-9): the three left finish the round
// exactly.
func TestCluster_FiveFromThree(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	lead := pc.servingNode()
	for range 2 {
		k := pc.addNode()
		pc.start(k)
		if out, err := pc.command(lead, "cluster", "add", strconv.Itoa(k+1), pc.addrs[k]); err != nil || !strings.Contains(out, "non-voter") {
			t.Fatalf("add %d: %v\n%s", k+1, err, out)
		}
	}
	pc.waitList(lead, `(?m)^4 +\S+ +voter +follower +yes`)
	pc.waitList(lead, `(?m)^5 +\S+ +voter +follower +yes`)
	agencies := pc.runAgencies(midData)
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	for _, i := range []int{lead, (lead + 3) % 5} {
		pc.kill(i)
		pc.gone[i] = true
	}
	waitAgencies(t, agencies, expectedWinners(t, midData, 2))
	pc.waitApplied()
	pc.compareStores(t, midData)
}

// cluster recover refuses a running node's folder at once, before it
// changes anything; on a stopped survivor it names the nodes to stop for
// good, and the recovered cluster has a new ID: the nodes of the old one
// refuse it.
func TestCluster_RecoverRefusesARunningNode(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 1, "")
	waitAgencies(t, pc.runAgencies(genData), expectedWinners(t, genData, 1))
	pc.waitApplied()
	old := pc.status(0).Cluster.ID
	recov := func() (string, time.Duration, error) {
		start := time.Now()
		out, err := runServer("cluster", "recover", "--db", pc.dbs[0], "--node", "1", "--nodes", "1="+pc.addrs[0])
		return out, time.Since(start), err
	}
	out, took, err := recov()
	if err == nil || !strings.Contains(out, "is held by a node that runs: stop it first") || took > 5*time.Second {
		t.Fatalf("recover of a running node's folder (%s): %v\n%s", took, err, out)
	}
	pc.procs[0].signal(syscall.SIGTERM)
	pc.procs[0].wait(time.Minute)
	out, _, err = recov()
	if err != nil || !strings.Contains(out, "these nodes of the cluster must be stopped for good") || !strings.Contains(out, "2="+pc.addrs[1]) {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	// The other two, still running, are the old cluster: they refuse the
	// recovered node, which leads its own.
	pc.nodes = "1=" + pc.addrs[0]
	pc.start(0)
	pc.procs[0].waitLine(`action: cluster_role \| result: success \| nodo: 1 \| rol: leader`, time.Minute)
	if id := pc.status(0).Cluster.ID; id == old {
		t.Fatalf("the recovered cluster kept the old ID %s", id)
	}
	for _, i := range []int{1, 2} {
		if n := len(pc.procs[i].grep(`clearing log suffix`)); n > 0 {
			t.Fatalf("node %d's log was truncated", i+1)
		}
	}
}

// runServer runs the server binary with args and returns its output.
func runServer(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(binDir, "server"), args...).CombinedOutput()
	return string(out), err
}
