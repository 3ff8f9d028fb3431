package central

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/internal/storetest"
	"github.com/loteria-nacional/tp0/internal/swarm"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// round is a round running in the background.
type round chan swarm.Result

// runAsync runs a round in the background.
func (tc *testCluster) runAsync(bets int) round {
	done := make(round, 1)
	go func() { done <- tc.runRound(bets) }()
	return done
}

// await waits for the round to end, at most two minutes.
func (r round) await(t *testing.T) swarm.Result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(2 * time.Minute):
		t.Fatal("the round did not end within two minutes")
		return swarm.Result{}
	}
}

// follower returns a running replica that does not lead.
func (tc *testCluster) follower() *replica {
	lead := tc.leader()
	return tc.others(lead.id)[0]
}

// waitServed waits for replica r's Serve to return, and returns its error.
func waitServed(t *testing.T, r *replica, d time.Duration) error {
	t.Helper()
	select {
	case <-r.served:
		return r.serveErr
	case <-time.After(d):
		t.Fatalf("replica %d still serves after %s", r.id, d)
		return nil
	}
}

// A follower that cannot apply an entry (its disk fails) stops for good:
// the failure is latched (it applies nothing after it, even once the disk
// is back), the central ends Serve with cluster.ErrApply (the process exits
// non-zero); the others finish the round, and the node, restarted with a
// working disk, rebuilds its store from the log and ends identical.
func TestCluster_FollowerApplyFailureStopsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 3, 3000
	var broken atomic.Int64 // the node whose disk fails
	tc := &testCluster{}
	tc.edit = func(id int, cfg *cluster.Config) {
		cfg.Hooks.Apply = func(first, last uint64) error {
			if broken.Load() == int64(id) {
				return errors.New("input/output error")
			}
			return nil
		}
	}
	tc = tc.with(t, 3, agencies, nil)
	f := tc.follower()
	done := tc.runAsync(bets)
	waitStored(t, f, 500)
	broken.Store(int64(f.id))
	err := waitServed(t, f, time.Minute)
	if !errors.Is(err, cluster.ErrApply) {
		t.Fatalf("the follower's Serve returned %v, want cluster.ErrApply", err)
	}
	appliedAtFailure := f.node.Status().Applied
	broken.Store(0) // the disk works again: the node stays stopped
	if poll(time.Second, func() bool { return f.node.Status().Applied != appliedAtFailure }) {
		t.Fatalf("the failed follower went on applying: %d, then %d", appliedAtFailure, f.node.Status().Applied)
	}
	res := done.await(t)
	tc.stop(f.id)
	tc.start(f.id, nil, f.dir)
	if tc.replica(f.id).node.Signals().Trusted {
		t.Fatal("the failed follower's store was trusted at its restart")
	}
	tc.checkInvariants(bets, res)
}

// A leader that cannot prepare (its Barrier fails, as on a node that
// cannot catch up) does not hold the cluster: after two failures it hands
// its leadership over, and another node serves the round.
func TestCluster_LeaderThatCannotPrepareHandsOver(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 2, 1000
	var first atomic.Int64 // the first node to prepare as leader: it always fails
	tc := &testCluster{}
	tc.edit = func(id int, cfg *cluster.Config) {
		cfg.Hooks.Barrier = func() error {
			if first.CompareAndSwap(0, int64(id)) || first.Load() == int64(id) {
				return errors.New("cannot catch up")
			}
			return nil
		}
	}
	tc = tc.with(t, 3, agencies, nil)
	start := time.Now()
	lead := tc.leader()
	if int64(lead.id) == first.Load() {
		t.Fatalf("node %d serves although its preparation always fails", lead.id)
	}
	t.Logf("node %d failed to prepare; node %d served %s after the start", first.Load(), lead.id, time.Since(start).Round(time.Millisecond))
	tc.checkInvariants(bets, tc.runRound(bets))
}

// The round's AGENCIES is the log's: nodes configured with fewer follow the
// round's count when they lead, and its agencies finish the round.
func TestCluster_AgenciesFollowTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 5, 1000
	var fewer atomic.Bool
	tc := &testCluster{}
	tc.edit = func(id int, cfg *cluster.Config) {
		if fewer.Load() {
			cfg.Agencies = 3
		}
	}
	tc = tc.with(t, 3, agencies, nil)
	lead := tc.leader()
	fewer.Store(true)
	for _, r := range tc.others(lead.id) { // the followers now say AGENCIES=3
		tc.stop(r.id)
		tc.start(r.id, nil, r.dir)
	}
	done := tc.runAsync(bets)
	waitStored(t, lead, 1000)
	tc.stop(lead.id)
	next := tc.leader(lead.id)
	if got := next.c.barrier().agencies; got != agencies {
		t.Fatalf("the new leader (AGENCIES=3) waits for %d agencies, want the round's %d", got, agencies)
	}
	res := done.await(t)
	fewer.Store(false)
	tc.start(lead.id, nil, lead.dir)
	tc.checkInvariants(bets, res)
}

// A new leader serves only once the round is in place: a hello in the gap
// between its becoming leader and the central taking the round is told
// not_leader, never welcomed into a round of before (the follower's own
// store's start), and once served it carries the round's id.
func TestCluster_ServesOnlyOnceTheRoundIsIn(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	var armed atomic.Bool
	gate := make(chan struct{})
	entered := make(chan int, 3)
	tc := &testCluster{}
	tc.prepare = func(r *replica) {
		id := r.id
		r.c.hooks.lead = func() {
			if armed.Load() {
				entered <- id
				<-gate
			}
		}
	}
	tc = tc.with(t, 3, 1, nil)
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(gate) }) })
	old := tc.leader()
	round := old.c.round.Load()
	armed.Store(true)
	tc.stop(old.id)
	var next *replica
	select {
	case id := <-entered:
		next = tc.replica(id)
	case <-time.After(30 * time.Second):
		t.Fatal("no new leader began to take the round")
	}
	if m := hello(t, next.addr); m.Kind() != protocol.KindError || m.(*protocol.Error).Code != protocol.CodeNotLeader {
		t.Fatalf("a hello while the new leader takes the round got %#v, want not_leader", m)
	}
	release.Do(func() { close(gate) })
	if !poll(10*time.Second, func() bool { s, _ := next.node.Leader(); return s }) {
		t.Fatal("the new leader does not serve")
	}
	m := hello(t, next.addr)
	w, ok := m.(*protocol.Welcome)
	if !ok || w.Round != round {
		t.Fatalf("the new leader's welcome: %#v, want round %d", m, round)
	}
}

// hello sends agency 1's Hello to addr and returns the answer.
func hello(t *testing.T, addr string) protocol.Message {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := protocol.Write(conn, &protocol.Hello{Agency: 1, Mode: protocol.ModeCSV}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := protocol.NewReader(conn, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A node started on another cluster's folder cannot join this one: the
// replicas refuse its connections (cluster ID mismatch), it wins no vote
// and truncates nothing, and the cluster finishes its round.
func TestCluster_AnotherClustersFolderIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 2, 1500
	b := newTestCluster(t, 3, agencies)
	b.runRound(200 / agencies) // b's log and term move on
	bLead := b.leader()
	for _, r := range b.others(0) {
		b.stop(r.id)
	}
	a := newTestCluster(t, 3, agencies)
	lead := a.leader()
	term := lead.node.Status().Term
	done := a.runAsync(bets)
	waitStored(t, lead, 500)
	f := a.others(lead.id)[0]
	a.stop(f.id)
	a.start(f.id, nil, bLead.dir) // a's node, on b's files
	res := done.await(t)
	if got := a.leader().node.Status().Term; got != term {
		t.Fatalf("the cluster's term moved from %d to %d: the foreign node took part in an election", term, got)
	}
	if st := a.replica(f.id).node.Status(); st.Cluster == lead.node.Status().Cluster {
		t.Fatalf("the foreign node reports this cluster's ID %s", st.Cluster)
	}
	a.stop(f.id)
	a.checkInvariants(bets, res)
}

// A node that bootstrapped alone (CLUSTER_NODES naming only itself) and
// took bets is another cluster: the nodes started later with the full list
// find it and refuse to bootstrap beside it, each saying what to do, and it
// keeps its own rows.
func TestCluster_NodeBootstrappedAloneStaysApart(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies = 1
	var alone atomic.Bool
	alone.Store(true)
	tc := &testCluster{}
	tc.edit = func(id int, cfg *cluster.Config) {
		if id == 3 && alone.Load() {
			cfg.Nodes = map[int]string{3: cfg.Nodes[3]}
		}
	}
	tc = tc.withStarted(t, 3, agencies, []int{3})
	three := tc.replica(3)
	if !poll(30*time.Second, func() bool { s, _ := three.node.Leader(); return s }) {
		t.Fatal("the lone node does not lead itself")
	}
	res, err := swarm.Run(context.Background(), swarm.Config{Addr: three.addr, Agencies: agencies, Bets: 300, Window: 2, RetryTimeout: time.Minute})
	if err != nil || res.Winners == nil {
		t.Fatal(err)
	}
	own := three.node.Status().Cluster
	for _, id := range []int{1, 2} {
		tc.start(id, nil, t.TempDir())
	}
	for _, id := range []int{1, 2} {
		r := tc.replica(id)
		select {
		case <-r.served:
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not stop beside the lone node's cluster", id)
		}
		if !errors.Is(r.serveErr, cluster.ErrOtherCluster) || !strings.Contains(r.serveErr.Error(), "node 3 at "+three.addr+" already belongs to cluster "+three.node.Status().Cluster) ||
			!strings.Contains(r.serveErr.Error(), "CLUSTER_JOIN=true") {
			t.Fatalf("node %d: %v, want a refusal naming node 3's cluster and what to do", id, r.serveErr)
		}
	}
	if st := three.node.Status(); st.Cluster != own || st.Role != "leader" {
		t.Fatalf("the lone node changed: %+v", st)
	}
	if r, _ := three.node.Round(); r.Bets != 300 {
		t.Fatalf("the lone node holds %d bets, want its own 300", r.Bets)
	}
}

// Two rounds through one cluster: the operator begins the second once the
// first is over (NewRound on the leader); every replica archives the first
// at the same entry and runs the second, refused while a round is open.
func TestCluster_TwoRounds(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 2, 800
	tc := newTestCluster(t, 3, agencies)
	lead := tc.leader()
	if _, err := lead.c.NewRound(context.Background(), agencies); !errors.Is(err, store.ErrRoundOpen) {
		t.Fatalf("a new round while the first is open: %v, want ErrRoundOpen", err)
	}
	first := tc.runRound(bets)
	tc.checkInvariants(bets, first)
	r1, _ := lead.node.Round()
	if _, err := lead.c.NewRound(context.Background(), agencies); err != nil {
		t.Fatal(err)
	}
	second := tc.runRound(bets)
	tc.checkInvariants(bets, second)
	for _, r := range tc.others(0) {
		archives, err := store.Archives(filepath.Join(r.dir, "bets.db"))
		if err != nil || len(archives) != 1 {
			t.Fatalf("replica %d: archives %v, %v", r.id, archives, err)
		}
		a, err := store.Open(archives[0], store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		ar, _ := a.Round()
		a.Close()
		if ar.Bets != r1.Bets || !ar.DrawTime.Equal(r1.DrawTime) {
			t.Fatalf("replica %d archived a round of %d bets drawn at %s, want %d at %s", r.id, ar.Bets, ar.DrawTime, r1.Bets, r1.DrawTime)
		}
	}
}

// A replica's store is trusted only as a clean stop left it: stopped
// cleanly, it starts as it is; with the marker gone (a crash), or its file
// overwritten with garbage, truncated, or replaced by an older copy while
// it was down, it is rebuilt from the snapshot and the log, and every time
// it ends identical to the others.
func TestCluster_UntrustedStoreIsRebuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 2, 1500
	tc := newTestCluster(t, 3, agencies)
	f := tc.follower()
	db := filepath.Join(f.dir, "bets.db")
	var older []byte
	var once sync.Once
	done := tc.runAsync(bets)
	waitStored(t, f, 400)
	tc.stop(f.id) // clean
	once.Do(func() { older, _ = os.ReadFile(db) })
	tc.start(f.id, nil, f.dir)
	if !tc.replica(f.id).node.Signals().Trusted {
		t.Fatal("a store stopped cleanly was not trusted")
	}
	res := done.await(t)
	for _, damage := range []struct {
		name string
		do   func() error
	}{
		{"Crash", func() error { return os.Remove(filepath.Join(f.dir, "bets.db.raft", "store-clean.json")) }},
		{"Garbage", func() error { return os.WriteFile(db, make([]byte, 1<<16), 0o600) }},
		{"Truncated", func() error { st, _ := os.Stat(db); return os.Truncate(db, st.Size()/2) }},
		{"OlderCopy", func() error { return os.WriteFile(db, older, 0o600) }},
		{"DigitOfAStoredRow", func() error { storetest.Change(t, db, "row"); return nil }},
		{"ByteOfAChecksum", func() error { storetest.Change(t, db, "sum"); return nil }},
		{"SwappedBatches", func() error { storetest.Change(t, db, "swap"); return nil }},
		{"AnotherRoundsStore", func() error { return copyStore(storetest.DamagedRow(t, 1), db) }},
	} {
		tc.stop(f.id)
		if err := damage.do(); err != nil {
			t.Fatal(err)
		}
		tc.start(f.id, nil, f.dir)
		if tc.replica(f.id).node.Signals().Trusted {
			t.Fatalf("%s: the store was trusted", damage.name)
		}
		tc.checkInvariants(bets, res)
	}
	// The leader's store too: a changed digit, and it is rebuilt, whoever
	// leads when it is back.
	lead := tc.leader()
	ldb := filepath.Join(lead.dir, "bets.db")
	tc.stop(lead.id)
	storetest.Change(t, ldb, "row")
	tc.start(lead.id, nil, lead.dir)
	if tc.replica(lead.id).node.Signals().Trusted {
		t.Fatal("the leader's changed store was trusted")
	}
	tc.checkInvariants(bets, res)
}

// copyStore copies the store file from over to.
func copyStore(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// A replica rebuilt after a crash in the second round replays the new
// round's entry over the first round's snapshot: it archives nothing twice
// and ends in the second round, identical to the others.
func TestCluster_RebuiltAcrossANewRound(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	const agencies, bets = 2, 800
	tc := newTestCluster(t, 3, agencies)
	tc.checkInvariants(bets, tc.runRound(bets))
	lead := tc.leader()
	if _, err := lead.c.NewRound(context.Background(), agencies); err != nil {
		t.Fatal(err)
	}
	second := tc.runRound(bets)
	f := tc.others(lead.id)[0]
	tc.stop(f.id)
	if err := os.Remove(filepath.Join(f.dir, "bets.db.raft", "store-clean.json")); err != nil {
		t.Fatal(err)
	}
	tc.start(f.id, nil, f.dir)
	tc.checkInvariants(bets, second)
	if archives, _ := store.Archives(filepath.Join(f.dir, "bets.db")); len(archives) != 1 {
		t.Fatalf("the rebuilt replica has %d archives, want 1: %v", len(archives), archives)
	}
}
