package cluster

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/loteria-nacional/tp0/store"
)

// inmem is raft's in-memory log and stable store, closable.
type inmem struct{ *raft.InmemStore }

func (inmem) Close() error { return nil }

// A joining node learns the cluster's ID from the first member that
// connects to it, and a leader's replication to a node once removed from
// this address may be that one: the node says it holds the cluster's state
// (and a leader refuses to add it) only once it holds entries, not once it
// has the ID.
func TestAbout_JoiningUntilItHoldsEntries(t *testing.T) {
	t.Parallel()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(t.TempDir(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := inmem{raft.NewInmemStore()}
	n := &Node{cfg: Config{ID: 2, Join: true}, logs: logs, snaps: snaps, ident: &identity{joining: true}}
	if got := n.about().state; got != stateJoining {
		t.Fatalf("a joining node without the ID says %q", got)
	}
	n.ident.id = NewID() // a member connected: the ID is adopted
	if got := n.about().state; got != stateJoining {
		t.Fatalf("a joining node with the ID and no entries says %q, want %q", got, stateJoining)
	}
	if err := logs.StoreLog(&raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration}); err != nil {
		t.Fatal(err)
	}
	if got := n.about().state; got != stateMember {
		t.Fatalf("a node holding entries says %q, want %q", got, stateMember)
	}
	n2 := &Node{cfg: Config{ID: 2, Join: true}, logs: inmem{raft.NewInmemStore()}, snaps: snaps, ident: &identity{id: NewID()}}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 5, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(sink, "state")
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if got := n2.about().state; got != stateMember {
		t.Fatalf("a node holding a snapshot says %q, want %q", got, stateMember)
	}
}

// A restore while raft holds a snapshot of the old store (its read
// transaction) does not wait for it: raft's snapshot goroutine may be
// waiting for raft's main goroutine, which waits for the restore. The old
// store closes once the snapshot is released.
func TestFSM_RestoreBesideAHeldSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := store.Options{NoSync: true}
	src, err := store.Open(filepath.Join(dir, "source.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.SetAgencies(2); err != nil {
		t.Fatal(err)
	}
	var image bytes.Buffer
	if _, err := src.Backup(&image); err != nil {
		t.Fatal(err)
	}
	src.Close()

	path := filepath.Join(dir, "bets.db")
	st, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fsm{path: path, opts: opts, signals: &signals{}, members: newMembers(nil), st: st, fail: func(error) {}}
	held, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.Restore(io.NopCloser(&image)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Restore waited for the snapshot raft holds")
	}
	held.Release()
	if n, err := f.store().AppliedIndex(); err != nil {
		t.Fatalf("the restored store: %d, %v", n, err)
	}
	f.close()
}
