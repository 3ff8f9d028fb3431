package central

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/internal/swarm"
	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// replica is one node of an in-process cluster: a central on its own port
// over its own store and raft state.
type replica struct {
	id       int
	addr     string
	dir      string
	node     *cluster.Node
	c        *Central
	cancel   context.CancelFunc
	served   chan struct{} // closed when Serve returned serveErr
	serveErr error
}

// testCluster is n replicas on loopback, each with its own logger.
type testCluster struct {
	t        *testing.T
	agencies int
	nodes    map[int]string
	replicas map[int]*replica
	net      *netsim
	// edit changes a node's config before it starts (faults, AGENCIES,
	// the nodes it knows); prepare, its central before it serves; join
	// are the nodes that start with Join.
	edit    func(id int, cfg *cluster.Config)
	prepare func(r *replica)
	join    map[int]bool
	mu      sync.Mutex
}

func newTestCluster(t *testing.T, n, agencies int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, agencies, nil)
}

// newTestClusterWith is newTestCluster with the replicas' traffic through
// ns (nil: the loopback as it is).
func newTestClusterWith(t *testing.T, n, agencies int, ns *netsim) *testCluster {
	t.Helper()
	return (&testCluster{}).with(t, n, agencies, ns)
}

// with starts tc (its edit and prepare set) as n replicas.
func (tc *testCluster) with(t *testing.T, n, agencies int, ns *netsim) *testCluster {
	t.Helper()
	return tc.withStarted(t, n, agencies, nil, ns)
}

// withStarted is with, starting only the replicas in only (nil: all); the
// others are started later (start(id, nil, t.TempDir())).
func (tc *testCluster) withStarted(t *testing.T, n, agencies int, only []int, ns ...*netsim) *testCluster {
	t.Helper()
	tc.t, tc.agencies, tc.nodes, tc.replicas = t, agencies, map[int]string{}, map[int]*replica{}
	if tc.join == nil {
		tc.join = map[int]bool{}
	}
	if len(ns) > 0 {
		tc.net = ns[0]
	}
	lns := map[int]net.Listener{}
	for id := 1; id <= n; id++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id], tc.nodes[id] = ln, ln.Addr().String()
	}
	for id := 1; id <= n; id++ {
		if only == nil || slices.Contains(only, id) {
			tc.start(id, lns[id], t.TempDir())
		} else {
			lns[id].Close()
		}
	}
	t.Cleanup(func() {
		for id := range tc.replicas {
			tc.stop(id)
		}
	})
	return tc
}

// start runs replica id on ln (nil: listen again on its address) in dir.
func (tc *testCluster) start(id int, ln net.Listener, dir string) {
	tc.t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", tc.nodes[id]); err != nil {
			tc.t.Fatal(err)
		}
	}
	log := testkit.Logger(tc.t, logging.WARNING)
	db := filepath.Join(dir, "bets.db")
	cfg := cluster.Config{ID: id, Nodes: tc.nodes, Join: tc.join[id], DBPath: db, Agencies: tc.agencies, Logger: log, Insecure: true,
		Snapshots: cluster.Snapshots{Trailing: 16}, WALSegmentSize: 64 << 10, Hooks: &cluster.Hooks{}}
	if tc.net != nil {
		cfg.Hooks.Cut = tc.net.cutter(id)
	}
	if tc.edit != nil {
		tc.edit(id, &cfg)
	}
	node, err := cluster.Start(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	opts := NewOptions()
	opts.Agencies, opts.DBPath, opts.Cluster, opts.Logger, opts.IdleTimeout = cfg.Agencies, db, node, log, 5*time.Second
	c, err := New(opts)
	if err != nil {
		node.Close()
		tc.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{id: id, addr: tc.nodes[id], dir: dir, node: node, c: c, cancel: cancel, served: make(chan struct{})}
	if tc.prepare != nil {
		tc.prepare(r)
	}
	go func() {
		defer close(r.served)
		r.serveErr = c.Serve(ctx, ln)
	}()
	tc.mu.Lock()
	tc.replicas[id] = r
	tc.mu.Unlock()
}

// stop ends replica id as the loss of its machine would, for the others:
// its port closes and its raft goes silent. Its files stay.
func (tc *testCluster) stop(id int) {
	tc.mu.Lock()
	r := tc.replicas[id]
	delete(tc.replicas, id)
	tc.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	<-r.served
	r.c.Close()
	r.node.Close()
}

// replica returns replica id (nil when it is not running).
func (tc *testCluster) replica(id int) *replica {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.replicas[id]
}

// others returns the running replicas but not.
func (tc *testCluster) others(not int) []*replica {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []*replica
	for _, r := range tc.replicas {
		if r.id != not {
			out = append(out, r)
		}
	}
	return out
}

// poll calls cond every 5 ms until it is true or d has passed (raft gives
// the tests no event to wait on).
func poll(d time.Duration, cond func() bool) bool { return testkit.Poll(d, 5*time.Millisecond, cond) }

// leader waits for a replica that serves agencies, other than not (0: any).
func (tc *testCluster) leader(not ...int) *replica {
	tc.t.Helper()
	var found *replica
	if !poll(30*time.Second, func() bool {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		for _, r := range tc.replicas {
			if serving, _ := r.node.Leader(); serving && (len(not) == 0 || r.id != not[0]) {
				found = r
				return true
			}
		}
		return false
	}) {
		tc.t.Fatal("no leader within 30 s")
	}
	return found
}

// waitStored waits until r's store holds more than n bets.
func waitStored(t *testing.T, r *replica, n uint64) {
	t.Helper()
	if !poll(time.Minute, func() bool { st, err := r.node.Round(); return err == nil && st.Bets > n }) {
		t.Fatalf("replica %d stored no more than %d bets within a minute", r.id, n)
	}
}

func (tc *testCluster) addresses() string {
	var out []string
	for id := 1; id <= len(tc.nodes); id++ {
		out = append(out, tc.nodes[id])
	}
	return strings.Join(out, ",")
}

// checkInvariants waits until every live replica applied the same log and
// checks what the cluster promises: each agency's bets stored exactly once
// (committed = sent), every replica's store identical (bets' rows hashed,
// the same draw time and winners), one draw, and each agency's winners
// those recomputed from the final store.
func (tc *testCluster) checkInvariants(bets int, res swarm.Result) {
	tc.t.Helper()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	// No write follows the round: the replicas converged once every
	// store applied the same last entry.
	var want uint64
	if !poll(30*time.Second, func() bool {
		want = 0
		for _, r := range tc.replicas {
			a := r.node.Status().Applied
			if want != 0 && a != want || a == 0 {
				return false
			}
			want = a
		}
		return true
	}) {
		tc.t.Fatal("the replicas did not apply the same log within 30 s")
	}
	var first string
	var firstRound store.Round
	for _, r := range tc.replicas {
		st, err := r.node.Round()
		if err != nil {
			tc.t.Fatal(err)
		}
		var rows bytes.Buffer
		h := sha256.New()
		err = r.node.ScanBets(func(b *lottery.Bet) error {
			rows.Reset()
			fmt.Fprintf(&rows, "%d,%s,%s,%s,%s,%d\n", b.Agency, b.FirstName, b.LastName, b.Document, b.Birthdate, b.Number)
			h.Write(rows.Bytes())
			return nil
		})
		if err != nil {
			tc.t.Fatal(err)
		}
		sum := fmt.Sprintf("%x", h.Sum(nil))
		if !st.Drawn {
			tc.t.Fatalf("replica %d: not drawn (%+v; want applied %d)", r.id, r.node.Status(), want)
		}
		for a := 1; a <= tc.agencies; a++ {
			if st.Committed[a] != uint64(bets) {
				tc.t.Fatalf("replica %d: agency %d has %d bets, want %d", r.id, a, st.Committed[a], bets)
			}
		}
		if first == "" {
			first, firstRound = sum, st
			continue
		}
		if sum != first || !st.DrawTime.Equal(firstRound.DrawTime) || fmt.Sprint(st.Winners) != fmt.Sprint(firstRound.Winners) {
			tc.t.Fatalf("replica %d differs: rows %s vs %s, draw %s vs %s", r.id, sum, first, st.DrawTime, firstRound.DrawTime)
		}
	}
	wantWinners := swarm.Expected(tc.agencies, bets)
	for a := 1; a <= tc.agencies; a++ {
		if len(firstRound.Winners[a]) != wantWinners[a] || len(res.Winners[a]) != wantWinners[a] {
			tc.t.Fatalf("agency %d: %d stored winners, %d answered, want %d", a, len(firstRound.Winners[a]), len(res.Winners[a]), wantWinners[a])
		}
	}
}

// Three replicas lose their leader mid-ingest: the agencies go to the new
// leader and the round finishes exactly once, the same on every replica,
// the lost one included once it is back.
func TestCluster_LeaderLostMidIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 3, 3000
	tc := newTestCluster(t, 3, agencies)
	old := tc.leader()
	done := make(chan struct{})
	var res swarm.Result
	var runErr error
	go func() {
		defer close(done)
		res, runErr = swarm.Run(context.Background(), swarm.Config{Addr: tc.addresses(), Agencies: agencies, Bets: bets, Window: 2, RetryTimeout: time.Minute})
	}()
	// Lose the leader once it stored some bets.
	waitStored(t, old, 1000)
	tc.stop(old.id)
	tc.leader(old.id)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the round did not finish after the leader was lost")
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	tc.start(old.id, nil, old.dir) // back, from its own files
	tc.checkInvariants(bets, res)
}

// runRound runs agencies × bets through the cluster and returns the result.
func (tc *testCluster) runRound(bets int) swarm.Result {
	tc.t.Helper()
	res, err := swarm.Run(context.Background(), swarm.Config{Addr: tc.addresses(), Agencies: tc.agencies, Bets: bets, Window: 2, RetryTimeout: time.Minute})
	if err != nil {
		tc.t.Fatal(err)
	}
	return res
}

// A replica whose disk was lost (no store, no raft state) joins again
// under its id and catches up from a snapshot plus the log: the leader
// compacted its log behind a snapshot, so the log alone cannot do it.
func TestCluster_FreshReplicaFromSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 3, 2000
	tc := newTestCluster(t, 3, agencies)
	res := tc.runRound(bets)
	lead := tc.leader()
	if err := lead.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	var lost *replica
	for _, r := range tc.replicas {
		if r.id != lead.id {
			lost = r
			break
		}
	}
	tc.stop(lost.id)
	// A lost machine's id is removed; its replacement, an empty disk,
	// joins and is added (a non-voter, promoted once caught up).
	if err := lead.node.RemoveServer(lost.id); err != nil {
		t.Fatal(err)
	}
	fresh := t.TempDir()
	tc.join[lost.id] = true
	tc.start(lost.id, nil, fresh)
	if suffrage, err := lead.node.AddServer(lost.id, tc.nodes[lost.id], false); err != nil || suffrage != "nonvoter" {
		t.Fatalf("AddServer = %q, %v", suffrage, err)
	}
	tc.checkInvariants(bets, res)
	if snaps, _ := filepath.Glob(filepath.Join(fresh, "bets.db.raft", "snapshots", "*", "state.bin")); len(snaps) == 0 {
		t.Fatal("the fresh replica caught up without installing a snapshot")
	}
	if !poll(30*time.Second, func() bool {
		servers, err := lead.node.Servers()
		return err == nil && len(servers) == 3 && servers[lost.id-1].Suffrage == "voter" && servers[lost.id-1].CaughtUp
	}) {
		servers, _ := lead.node.Servers()
		t.Fatalf("the fresh replica was not promoted: %+v", servers)
	}
}

// A follower restarted mid-round replays its own log, skipping what its
// store had applied, and ends with the same store.
func TestCluster_FollowerRestartedMidRound(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 3, 3000
	tc := newTestCluster(t, 3, agencies)
	lead := tc.leader()
	var follower *replica
	for _, r := range tc.replicas {
		if r.id != lead.id {
			follower = r
			break
		}
	}
	done := make(chan swarm.Result, 1)
	go func() { done <- tc.runRound(bets) }()
	waitStored(t, follower, 1000)
	tc.stop(follower.id)
	tc.start(follower.id, nil, follower.dir)
	res := <-done
	tc.checkInvariants(bets, res)
}

// The leader lost right after the last finish: the draw was in that entry,
// so the new leader answers every agency's winners from it, on every
// replica the same.
func TestCluster_LeaderLostAfterTheLastFinish(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 3, 1500
	tc := newTestCluster(t, 3, agencies)
	old := tc.leader()
	done := make(chan swarm.Result, 1)
	go func() { done <- tc.runRound(bets) }()
	if !poll(time.Minute, func() bool { r, err := old.node.Round(); return err == nil && len(r.Finished) == agencies }) {
		t.Fatal("the agencies did not finish within a minute")
	}
	tc.stop(old.id)
	res := <-done
	tc.start(old.id, nil, old.dir)
	tc.checkInvariants(bets, res)
}

// netsim is the replicas' network, which can cut a node off from the
// others, both ways (cluster.Hooks.Cut): its connections close and no new
// one is made.
type netsim struct {
	mu  sync.Mutex
	cut map[int]bool
}

func newNetsim() *netsim { return &netsim{cut: map[int]bool{}} }

func (ns *netsim) cutter(from int) func(peer int) bool {
	return func(peer int) bool {
		ns.mu.Lock()
		defer ns.mu.Unlock()
		return ns.cut[from] || ns.cut[peer]
	}
}

// partition cuts node id off (heal with heal).
func (ns *netsim) partition(id int) {
	ns.mu.Lock()
	ns.cut[id] = true
	ns.mu.Unlock()
}

func (ns *netsim) heal(id int) {
	ns.mu.Lock()
	delete(ns.cut, id)
	ns.mu.Unlock()
}

// The leader partitioned from the other replicas mid-ingest (it still
// takes agencies' connections, but has no quorum): it commits nothing more,
// the others elect a new leader, the agencies go there, and once healed the
// old leader steps down and ends with the same store.
func TestCluster_LeaderPartitionedMidIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 3, 3000
	ns := newNetsim()
	tc := newTestClusterWith(t, 3, agencies, ns)
	old := tc.leader()
	done := make(chan swarm.Result, 1)
	go func() { done <- tc.runRound(bets) }()
	waitStored(t, old, 1000)
	ns.partition(old.id)
	tc.leader(old.id) // the others elect a new leader
	res := <-done
	ns.heal(old.id)
	tc.checkInvariants(bets, res)
}
