package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A randomized robustness run, in the spirit of etcd's robustness tests:
// each seed picks a schedule of faults and their times (kill -9, SIGSTOP,
// a partition, a clean restart, a membership change: a node removed and a
// fresh one added) against three central processes while two agencies run
// a round; then every fault is healed and the checkers run: every
// agency's bets stored once and in order, its winners, every replica's
// store identical, and the agencies' histories linearizable (porcupine). One fault at a time, so the cluster keeps its quorum and
// the round must finish. make test runs TP0_CLUSTER_SEEDS (default: two
// seeds); make chaos SEEDS=N runs N; a failed seed is named, and
// TP0_CLUSTER_SEEDS=S replays it.
func TestClusterChaos(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster chaos skipped in -short mode")
	}
	for _, seed := range clusterSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("chaos: seed %d failed; replay it with TP0_CLUSTER_SEEDS=%d go test -run 'TestClusterChaos' ./e2e", seed, seed)
				}
			})
			runClusterChaos(t, seed)
		})
	}
}

// clusterSeeds are TP0_CLUSTER_SEEDS ("1,2,3"), or TP0_CLUSTER_SEED_COUNT
// seeds from the clock, or seeds 1 and 2.
func clusterSeeds(t *testing.T) []uint64 {
	if v := os.Getenv("TP0_CLUSTER_SEEDS"); v != "" {
		var out []uint64
		for _, f := range strings.Split(v, ",") {
			s, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			if err != nil {
				t.Fatalf("TP0_CLUSTER_SEEDS: %q is not a seed", f)
			}
			out = append(out, s)
		}
		return out
	}
	if v := os.Getenv("TP0_CLUSTER_SEED_COUNT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TP0_CLUSTER_SEED_COUNT=%q", v)
		}
		base := uint64(time.Now().UnixNano())
		out := make([]uint64, n)
		for i := range out {
			out[i] = base + uint64(i)
		}
		return out
	}
	return []uint64{1, 2}
}

// faults are what a schedule picks from.
var faults = []string{"kill", "pause", "partition", "restart", "replace"}

func runClusterChaos(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cut := filepath.Join(t.TempDir(), "cut")
	if err := os.WriteFile(cut, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pc := newProcessCluster(t, 2, "")
	for i := range pc.procs {
		pc.env[i] = []string{"TP0_TEST_CUT_FILE=" + cut}
		pc.start(i)
	}
	pc.servingNode()
	pc.hist = newHistories(t)
	agencies := pc.runAgencies(midData)
	finished := func() bool {
		for _, a := range agencies[1:] {
			select {
			case <-a.done:
			default:
				return false
			}
		}
		return true
	}
	replaced := false
	step := func(d time.Duration) time.Duration { return d + time.Duration(rng.Int64N(int64(d))) }
	for n := 1; !finished() && n <= 20; n++ {
		hold(step(200 * time.Millisecond))
		live := pc.live()
		i := live[rng.IntN(len(live))]
		fault := faults[rng.IntN(len(faults))]
		if fault == "replace" && replaced {
			fault = "kill"
		}
		d := step(300 * time.Millisecond)
		t.Logf("chaos seed %d, fault %d: %s node %d for %s", seed, n, fault, i+1, d)
		switch fault {
		case "kill":
			pc.kill(i)
			hold(d)
			pc.start(i)
		case "pause":
			pc.procs[i].signal(syscall.SIGSTOP)
			hold(d)
			pc.procs[i].signal(syscall.SIGCONT)
		case "partition":
			os.WriteFile(cut, []byte(strconv.Itoa(i+1)+"\n"), 0o600)
			hold(d)
			os.WriteFile(cut, nil, 0o600)
		case "restart":
			pc.procs[i].signal(syscall.SIGTERM)
			if code := pc.procs[i].wait(time.Minute); code != 0 {
				t.Fatalf("node %d exited %d at a clean stop", i+1, code)
			}
			pc.start(i)
		case "replace":
			replaced = true
			pc.kill(i)
			pc.gone[i] = true
			pc.retry(func(lead int) (string, error) { return pc.command(lead, "cluster", "remove", strconv.Itoa(i+1)) })
			k := pc.addNode()
			pc.env[k] = []string{"TP0_TEST_CUT_FILE=" + cut}
			pc.start(k)
			pc.retry(func(lead int) (string, error) {
				return pc.command(lead, "cluster", "add", strconv.Itoa(k+1), pc.addrs[k])
			})
		}
	}
	os.WriteFile(cut, nil, 0o600)
	waitAgencies(t, agencies, expectedWinners(t, midData, 2))
	pc.waitApplied()
	pc.compareStores(t, midData)
	pc.hist.check(t, pc.agency, midData)
}

// servingNode waits for a live node whose /api/status says it serves, and
// returns its index.
func (pc *processCluster) servingNode() int {
	pc.t.Helper()
	found := -1
	if !poll(time.Minute, func() bool {
		for _, i := range pc.live() {
			resp, err := pc.get(i, "/api/status", time.Second)
			if err != nil {
				continue
			}
			var st struct {
				Cluster *struct {
					Serving bool `json:"serving"`
				} `json:"cluster"`
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && st.Cluster != nil && st.Cluster.Serving {
				found = i
				return true
			}
		}
		return false
	}) {
		pc.t.Fatal("no node serves within a minute")
	}
	return found
}

// retry runs a membership command against the serving node until it is
// accepted (leadership may move meanwhile).
func (pc *processCluster) retry(cmd func(lead int) (string, error)) {
	pc.t.Helper()
	var out string
	var err error
	for range 20 {
		if out, err = cmd(pc.servingNode()); err == nil {
			return
		}
		hold(200 * time.Millisecond)
	}
	pc.t.Fatalf("the command was refused 20 times: %v\n%s", err, out)
}

// hold lets d pass: a fault's length in the schedule (not a wait for
// something to happen: those poll to a deadline).
func hold(d time.Duration) {
	t := time.NewTimer(d)
	<-t.C
}
