package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// A replica whose store differs from the leader's at a checkpoint (a test
// build's switch changes what it holds the leader's summary to, as a
// replica that applied the same log into another state would) logs one
// cluster_integrity fail line naming the agency that differs and stops,
// exit 1; the others finish the round; restarted, it is rebuilt from the
// snapshot and the log, says it diverged before in server cluster list and
// /metrics, and ends identical to the others.
func TestCluster_DivergedReplicaStops(t *testing.T) {
	clusterTest(t)
	pc := newProcessCluster(t, 2, "")
	pc.env[2] = []string{"TP0_TEST_DIVERGE=1"}
	for i := range 3 {
		pc.start(i)
	}
	agencies := pc.runAgencies(genData)
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	if code := pc.procs[2].wait(2 * time.Minute); code != 1 {
		t.Fatalf("the replica that differs exited %d, want 1", code)
	}
	line := pc.procs[2].waitLine(`action: cluster_integrity \| result: fail`, time.Second)
	if !strings.Contains(line, "differs from the leader's at the same log index") || !strings.Contains(line, "agency 1: digest") {
		t.Fatalf("the integrity line: %s", line)
	}
	if n := len(pc.procs[2].grep(`action: cluster_(integrity|apply) \| result: fail`)); n != 1 {
		t.Fatalf("%d integrity lines, want the one:\n%s", n, pc.procs[2].output())
	}
	pc.env[2] = nil
	pc.start(2)
	pc.procs[2].waitLine(`action: cluster_start \| result: in_progress .*almacen: reconstruido`, time.Minute)
	pc.waitApplied()
	if out, err := pc.command(2, "cluster", "list"); err != nil || !strings.Contains(out, "integrity: node 3's store DIVERGED from the leader's") || !strings.Contains(out, "rebuilt since") {
		t.Fatalf("node 3's cluster list: %v\n%s", err, out)
	}
	if m := pc.metrics(2); !regexp.MustCompile(`tp0_cluster_integrity_diverged\{node="3"\} 1`).MatchString(m) {
		t.Fatal("node 3's /metrics does not say it diverged")
	}
	lead := pc.servingNode()
	if m := pc.metrics(lead); !regexp.MustCompile(`tp0_cluster_integrity_checks_total\{node="\d"\} [1-9]`).MatchString(m) {
		t.Fatal("the leader's /metrics counts no checkpoint")
	}
	pc.compareStores(t, genData)
}
