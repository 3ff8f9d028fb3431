package cluster

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/store"
)

// fsm applies the log to the replica's store. Raft calls ApplyBatch from
// one goroutine; Snapshot and Restore come from raft too, and readers (the
// central's sessions) use the store between them: mu guards the store
// pointer, which Restore replaces.
type fsm struct {
	path string
	opts store.Options

	mu sync.RWMutex
	st *store.Store

	// failed is set when an entry could not be applied (a damaged store, a
	// failing disk, an entry this version cannot read): the node stops.
	fail func(error)
	// applied is told each batch's outcome, after it is durable.
	applied func(results []store.Applied)
}

// result is what raft hands back to the Apply call of an entry.
type result struct {
	store.Applied
	err error // the entry was not applied (the node is stopping)
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies raft's batch of committed entries in one store
// transaction (store.Apply), skipping those applied before a restart.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	entries := make([]store.Entry, 0, len(logs))
	at := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			out[i] = result{}
			continue
		}
		c, err := decode(l.Data)
		if err != nil {
			return f.failAll(out, fmt.Errorf("log index %d: %w", l.Index, err))
		}
		entries = append(entries, store.Entry{Index: l.Index, Cmd: c})
		at = append(at, i)
	}
	if len(entries) == 0 {
		return out
	}
	f.mu.RLock()
	res, err := f.st.Apply(entries)
	f.mu.RUnlock()
	if err != nil {
		return f.failAll(out, err)
	}
	for j, i := range at {
		out[i] = result{Applied: res[j]}
	}
	if f.applied != nil {
		f.applied(res)
	}
	return out
}

func (f *fsm) failAll(out []any, err error) []any {
	f.fail(err)
	for i := range out {
		out[i] = result{err: err}
	}
	return out
}

// Snapshot takes a consistent view of the store at once; raft writes it
// out later (Persist) while entries go on being applied.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	sn, err := f.st.Snapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{sn: sn}, nil
}

// Restore replaces the store with a snapshot: written beside it, synced,
// renamed over it and opened again. The snapshot carries its applied index,
// so the entries raft replays after it are skipped or applied exactly once.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.st.Close(); err != nil {
		return err
	}
	if err := store.Restore(f.path, rc); err != nil {
		// The old file is still in place: open it again.
		if st, oerr := store.Open(f.path, f.opts); oerr == nil {
			f.st = st
		}
		return err
	}
	st, err := store.Open(f.path, f.opts)
	if err != nil {
		return err
	}
	f.st = st
	return nil
}

// store returns the current store, for reads.
func (f *fsm) store() *store.Store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st
}

type snapshot struct{ sn *store.Snapshot }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.sn.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.sn.Release() }
