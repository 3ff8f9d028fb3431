package cluster

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/store"
)

// Each timeout is defaulted and checked on its own: a partly set struct
// keeps what it sets and takes the defaults for the rest (a zero Apply
// would time every write out at once).
func TestTimeouts(t *testing.T) {
	t.Parallel()
	got := Timeouts{Heartbeat: time.Second, Election: 2 * time.Second}.withDefaults()
	if got.Heartbeat != time.Second || got.Election != 2*time.Second || got.Apply != DefaultTimeouts.Apply || got.LeaderLease != DefaultTimeouts.LeaderLease {
		t.Fatalf("partly set timeouts became %+v", got)
	}
	if err := got.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Timeouts{
		{Heartbeat: time.Millisecond},
		{Election: 100 * time.Millisecond, Heartbeat: time.Second},
		{LeaderLease: time.Second},
		{Apply: time.Hour},
	} {
		if err := bad.withDefaults().validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// The handshake's frames round-trip (a probe's hello too), what a node
// says of itself parses back, and a hello of another version or cut short
// is refused.
func TestHandshakeFrames(t *testing.T) {
	t.Parallel()
	id := NewID()
	var b bytes.Buffer
	for _, want := range []hello{{cluster: id, from: 2, to: 3}, {from: 5, to: 1, probe: true}} {
		b.Reset()
		if err := writeHello(&b, want); err != nil || b.Len() != helloSize {
			t.Fatalf("hello of %d bytes: %v", b.Len(), err)
		}
		h, err := readHello(&b)
		if err != nil || h != want {
			t.Fatalf("%+v, %v", h, err)
		}
	}
	me := info{version: 2, state: stateFresh, admin: "http://10.0.0.1:8080", nonce: newNonce(), nodes: "abc"}
	if got, why := parseInfo(me.reason(ErrProbe)); got != me || why != ErrProbe.Error() {
		t.Fatalf("info %+v, %q from %q", got, why, me.reason(ErrProbe))
	}
	if got, why := parseInfo("node 3 is not a member"); got.version != 1 || why != "node 3 is not a member" {
		t.Fatalf("a first version's reason: %+v, %q", got, why)
	}
	b.Reset()
	writeReply(&b, reply{cluster: id, node: 3, reason: strings.Repeat("x", 300)})
	r, err := readReply(&b)
	if err != nil || r.ok || r.node != 3 || len(r.reason) != 255 {
		t.Fatalf("%+v, %v", r, err)
	}
	for _, bad := range [][]byte{{2}, append([]byte{1}, make([]byte, 10)...)} {
		if _, err := readHello(bytes.NewReader(append(bad, make([]byte, helloSize-len(bad))...)[:len(bad)])); !errors.Is(err, ErrPeerRefused) {
			t.Errorf("%x: %v", bad, err)
		}
	}
	nodes := map[int]string{1: "a:1", 2: "b:2"}
	nonces := map[int]Nonce{1: newNonce(), 2: newNonce()}
	if NonceID(nodes, nonces) != NonceID(nodes, maps.Clone(nonces)) {
		t.Fatal("the same bootstrap gives two IDs")
	}
	again := map[int]Nonce{1: nonces[1], 2: newNonce()}
	if NonceID(nodes, nonces) == NonceID(nodes, again) {
		t.Fatal("two bootstraps at the same addresses share a cluster ID")
	}
}

// A joining node takes the first member's cluster ID and keeps it; a
// different one is then a mismatch. A node that is to bootstrap takes none.
func TestIdentity(t *testing.T) {
	t.Parallel()
	var kept ID
	fresh := &identity{persist: func(id ID) error { kept = id; return nil }}
	if err := fresh.check(NewID()); !errors.Is(err, ErrPeerRefused) || !kept.IsZero() {
		t.Fatalf("a node that is to bootstrap took a peer's ID: %v", err)
	}
	i := &identity{joining: true, persist: func(id ID) error { kept = id; return nil }}
	a, b := NewID(), NewID()
	if err := i.check(ID{}); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("a peer without an ID: %v", err)
	}
	if err := i.check(a); err != nil || kept != a || i.get() != a {
		t.Fatalf("adopting: %v, kept %s", err, kept)
	}
	if err := i.check(b); !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("another cluster: %v", err)
	}
}

// A clean stop's marker is taken once, and trusts only the file it
// describes.
func TestMarker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "bets.db")
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	id := NewID()
	if err := writeMarker(dir, db, 7, 9, id); err != nil {
		t.Fatal(err)
	}
	m, ok, err := takeMarker(dir)
	if err != nil || !ok || m.Applied != 7 {
		t.Fatalf("%+v %t %v", m, ok, err)
	}
	if _, ok, _ := takeMarker(dir); ok {
		t.Fatal("the marker was taken twice")
	}
	if ok, why := m.trusted(db, id); !ok {
		t.Fatalf("the same file is not trusted: %s", why)
	}
	if ok, _ := m.trusted(db, NewID()); ok {
		t.Fatal("a marker of another cluster was trusted")
	}
	s, _ = store.Open(db, store.Options{})
	s.SetAgencies(3) // a write after the stop
	s.Close()
	if ok, _ := m.trusted(db, id); ok {
		t.Fatal("a file written after the clean stop was trusted")
	}
}

// A store that records another cluster than its raft folder is refused at
// start, naming both.
func TestStart_StoreOfAnotherCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "bets.db")
	nodes := map[int]string{1: "127.0.0.1:1"}
	n, err := Start(Config{ID: 1, Nodes: nodes, DBPath: db, Agencies: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !testkit.Poll(30*time.Second, 10*time.Millisecond, func() bool { return n.Status().Applied > 0 }) {
		t.Fatal("the node began no round")
	}
	own := n.Status().Cluster
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetClusterID(NewID().String())
	s.Close()
	_, err = Start(Config{ID: 1, Nodes: nodes, DBPath: db, Agencies: 1})
	if !errors.Is(err, ErrOtherCluster) || !strings.Contains(err.Error(), own) {
		t.Fatalf("got %v, want ErrOtherCluster naming both clusters", err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("the refused store was touched: %v", err)
	}
}

// Recover rewrites a stopped node's raft state to a new configuration, and
// the node then starts and leads it with its data.
func TestRecover(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	n, err := Start(Config{ID: 1, Nodes: map[int]string{1: "127.0.0.1:1"}, DBPath: db, Agencies: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !testkit.Poll(30*time.Second, 10*time.Millisecond, func() bool { return n.Status().Applied > 0 }) {
		t.Fatal("the node began no round")
	}
	old := n.Status().Cluster
	// A folder in use is refused at once, before anything changes.
	told := false
	if _, err := Recover(Config{ID: 1, Nodes: map[int]string{1: "127.0.0.1:1"}, DBPath: db}, func(map[int]string) error { told = true; return nil }); !errors.Is(err, ErrInUse) || told {
		t.Fatalf("Recover of a running node's folder = %v (told: %t), want ErrInUse", err, told)
	}
	n.Close()
	done := make(chan error, 1)
	var gone map[int]string
	var id ID
	go func() {
		var err error
		id, err = Recover(Config{ID: 1, Nodes: map[int]string{1: "127.0.0.1:1"}, DBPath: db}, func(g map[int]string) error { gone = g; return nil })
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Recover did not return")
	}
	if len(gone) != 0 || id.String() == old || id.IsZero() {
		t.Fatalf("recovered as %s (was %s), gone %v", id, old, gone)
	}
	n, err = Start(Config{ID: 1, Nodes: map[int]string{1: "127.0.0.1:1"}, DBPath: db, Agencies: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !testkit.Poll(30*time.Second, 10*time.Millisecond, func() bool { return n.Status().Role == "leader" }) || n.Status().Cluster != id.String() {
		t.Fatalf("the recovered node: %+v", n.Status())
	}
}

// neverAnswered is a raft future that is never answered, as a write left
// in the apply queue of a leader that shuts down (hashicorp/raft#498); it
// is closed when someone starts waiting on it.
type neverAnswered chan struct{}

func (c neverAnswered) Error() error {
	close(c)
	select {}
}

// answered is a raft future answered at once.
type answered struct{}

func (answered) Error() error { return nil }

// Each wait on raft is bounded on its own: a future raft never answers
// holds nobody else's, a snapshot's long wait included, nor a clean stop.
func TestWait_EachBoundedOnItsOwn(t *testing.T) {
	t.Parallel()
	n, err := Start(Config{ID: 1, Nodes: map[int]string{1: "127.0.0.1:1"}, DBPath: filepath.Join(t.TempDir(), "bets.db"), Agencies: 1})
	if err != nil {
		t.Fatal(err)
	}
	held := make(neverAnswered)
	go wait(held, time.Hour)
	<-held // a wait now blocks on it
	start := time.Now()
	if err := wait(answered{}, time.Minute); err != nil || time.Since(start) > 10*time.Second {
		t.Fatalf("a wait behind an unanswered future: %v after %s", err, time.Since(start))
	}
	if err := wait(make(neverAnswered), 10*time.Millisecond); !errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("an unanswered future's bound: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close = %v, want a clean stop", err)
	}
}
