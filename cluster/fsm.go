package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// fsm applies the log to the replica's store. Raft calls ApplyBatch from
// one goroutine; Snapshot and Restore come from raft too, and readers (the
// central's sessions) use the store between them: mu guards the store
// pointer, which Restore and a new round replace.
//
// A failure to apply is terminal: raft has already moved past the batch and
// will not hand it again, so a replica that went on with the next batches
// would have skipped entries, silently. The first failure is latched:
// every later batch is refused, fail stops the node, and the store is not
// trusted at the next start (it is rebuilt from a snapshot and the log).
type fsm struct {
	path        string
	opts        store.Options
	archiveKeep int
	hooks       *Hooks
	signals     *signals
	members     *members

	mu sync.RWMutex
	st *store.Store

	failed atomic.Pointer[error]
	fail   func(error) // told once, the first failure
	// over is told when an entry finishes the round (its last delivery):
	// the node snapshots then; checkpoint, when an entry (a checkpoint)
	// held the store to the leader's, its index.
	over       func()
	checkpoint func(index uint64)
	// configured is told each committed configuration.
	configured func(servers []raft.Server)
	// own are the Append entries this node proposed and still waits for,
	// by their data's first byte: raft hands the leader's FSM the very
	// slice it was given, and its batch was checked when it came in, so it
	// is taken as it is rather than parsed again.
	own sync.Map // *byte → ownEntry
}

// ownEntry is a proposed Append entry's data length and its batch (a view
// over the data).
type ownEntry struct {
	n     int
	frame *protocol.BatchFrame
}

// propose records data, the Append entry of batch, as this node's own.
// The returned func forgets it (once its outcome is known).
func (f *fsm) propose(data []byte, batch lottery.Bets) func() {
	bf, ok := batch.(*protocol.BatchFrame)
	if !ok {
		return func() {}
	}
	v, ok := protocol.Reframe(data[2:], bf)
	if !ok {
		return func() {}
	}
	key := unsafe.SliceData(data)
	f.own.Store(key, ownEntry{n: len(data), frame: v})
	return func() { f.own.Delete(key) }
}

// decode is decode(data), taking this node's own Append entries as they
// were proposed.
func (f *fsm) decode(data []byte) (store.Command, error) {
	if len(data) > 2 && store.CommandKind(data[1]) == store.CmdAppend {
		if v, ok := f.own.LoadAndDelete(unsafe.SliceData(data)); ok && v.(ownEntry).n == len(data) {
			bf := v.(ownEntry).frame
			return store.Command{Kind: store.CmdAppend, Agency: bf.Agency, First: bf.First, Bets: bf}, nil
		}
	}
	return decode(data)
}

var (
	_ raft.BatchingFSM        = (*fsm)(nil)
	_ raft.ConfigurationStore = (*fsm)(nil)
)

// ErrApply means this replica could not apply an entry of the log: it
// stops rather than skip it.
var ErrApply = errors.New("the replica could not apply the log")

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies raft's batch of committed entries in one store
// transaction (store.Apply), skipping those applied before a restart; a new
// round splits it (the round's file is archived at that entry).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if err := f.latched(); err != nil {
		return fill(out, err)
	}
	start := time.Now()
	entries := make([]store.Entry, 0, len(logs))
	at := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			out[i] = result{}
			continue
		}
		c, err := f.decode(l.Data)
		if err != nil {
			return f.failAll(out, fmt.Errorf("log index %d: %w", l.Index, err))
		}
		if h := f.hooks; h != nil && h.Diverge != nil && c.Kind == store.CmdCheckpoint {
			h.Diverge(c.Summary)
		}
		entries = append(entries, store.Entry{Index: l.Index, Cmd: c})
		at = append(at, i)
	}
	if len(entries) == 0 {
		return out
	}
	if h := f.hooks; h != nil && h.Apply != nil {
		if err := h.Apply(entries[0].Index, entries[len(entries)-1].Index); err != nil {
			return f.failAll(out, err)
		}
	}
	over := false
	for done := 0; done < len(entries); {
		end := done + 1
		for end < len(entries) && entries[end-1].Cmd.Kind != store.CmdNewRound {
			end++
		}
		res, err := f.applySegment(entries[done:end])
		if err != nil {
			return f.failAll(out, err)
		}
		for j, a := range res {
			out[at[done+j]] = result{Applied: a}
			over = over || a.Over
			if a.Checked && f.checkpoint != nil {
				f.checkpoint(entries[done+j].Index)
			}
		}
		done = end
	}
	f.signals.fsmApply.observe(time.Since(start))
	if over && f.over != nil {
		f.over()
	}
	return out
}

// applySegment applies entries of which only the last may be a new round.
func (f *fsm) applySegment(entries []store.Entry) ([]store.Applied, error) {
	last := entries[len(entries)-1]
	if last.Cmd.Kind != store.CmdNewRound {
		f.mu.RLock()
		defer f.mu.RUnlock()
		return f.st.Apply(entries)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res, err := f.st.Apply(entries)
	if err != nil || !res[len(res)-1].NewRound {
		return res, err
	}
	if err := f.beginNext(last); err != nil {
		return nil, fmt.Errorf("log index %d, a new round: %w", last.Index, err)
	}
	return res, nil
}

// beginNext archives the finished round's file and begins the next round
// in a new one, at entry e (CmdNewRound). The archive is a file of its own
// that no snapshot carries: it is made durable first. Replayed after an
// unclean stop (the store rebuilt), an entry whose archive exists removes
// the rebuilt copy instead.
func (f *fsm) beginNext(e store.Entry) error {
	r, err := f.st.Round()
	if err != nil {
		return err
	}
	id, err := f.st.ClusterID()
	if err != nil {
		return err
	}
	version, err := f.st.ClusterVersion()
	if err != nil {
		return err
	}
	if err := errors.Join(f.st.Sync(), f.st.Close()); err != nil {
		return err
	}
	if done, err := archivedBefore(f.path, r.DrawTime, e.Index); err != nil {
		return err
	} else if done {
		if err := os.Remove(f.path); err != nil {
			return err
		}
	} else if _, err := store.Archive(f.path, r.DrawTime); err != nil {
		return err
	}
	if _, err := store.PruneArchives(f.path, f.archiveKeep); err != nil {
		return err
	}
	st, err := store.Open(f.path, f.opts)
	if err != nil {
		return err
	}
	f.st = st
	if id != "" {
		if err := st.SetClusterID(id); err != nil {
			return err
		}
	}
	// The next round's file begins it, and keeps the cluster's version.
	_, err = st.Apply([]store.Entry{{Index: e.Index, Cmd: store.Command{Kind: store.CmdBegin, At: e.Cmd.At, Agencies: e.Cmd.Agencies}},
		{Index: e.Index, Cmd: store.Command{Kind: store.CmdVersion, Version: version}}})
	return err
}

// archivedBefore reports whether the round drawn at drawTime was archived
// at log index index already (its archive holds that applied index).
func archivedBefore(path string, drawTime time.Time, index uint64) (bool, error) {
	dst := store.ArchiveName(path, drawTime)
	if _, err := os.Stat(dst); err != nil {
		return false, nil
	}
	a, err := store.Open(dst, store.Options{ReadOnly: true})
	if err != nil {
		return false, err
	}
	defer a.Close()
	applied, err := a.AppliedIndex()
	return applied == index, err
}

func (f *fsm) latched() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fsm) failAll(out []any, err error) []any {
	err = fmt.Errorf("%w: %w", ErrApply, err)
	if f.failed.CompareAndSwap(nil, &err) {
		f.fail(err)
	}
	return fill(out, f.latched())
}

func fill(out []any, err error) []any {
	for i := range out {
		out[i] = result{err: err}
	}
	return out
}

// StoreConfiguration learns each committed configuration (who may connect).
func (f *fsm) StoreConfiguration(_ uint64, c raft.Configuration) {
	f.members.set(c.Servers)
	if f.configured != nil {
		f.configured(c.Servers)
	}
}

// Snapshot takes a consistent view of the store at once; raft writes it
// out later (Persist) while entries go on being applied.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.latched(); err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	sn, err := f.st.Snapshot()
	if err != nil {
		return nil, err
	}
	return &snapshot{sn: sn, signals: f.signals}, nil
}

// Restore replaces the store with a snapshot: written beside it, synced,
// renamed over it and opened again. The snapshot carries its applied index,
// so the entries raft replays after it are skipped or applied exactly once.
//
// The old store is closed once its last snapshot is released, not here:
// raft may hold one (a read transaction, which bbolt's Close waits for)
// while its snapshot goroutine waits for the configuration from raft's main
// goroutine, which waits for this restore.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := store.Restore(f.path, rc, f.opts.Check); err != nil {
		return err // the old file is still in place, and open
	}
	st, err := store.Open(f.path, f.opts)
	if err != nil {
		err = fmt.Errorf("%w: opening the restored snapshot: %w", ErrApply, err)
		if f.failed.CompareAndSwap(nil, &err) {
			f.fail(err)
		}
		return err
	}
	old := f.st
	f.st = st
	go old.Close()
	f.signals.restores.Add(1)
	return nil
}

// store returns the current store, for reads.
func (f *fsm) store() *store.Store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st
}

// close syncs and closes the store; it returns the store's applied index
// when that is durable.
func (f *fsm) close() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	applied, err := f.st.AppliedIndex()
	if err == nil {
		err = f.st.Sync()
	}
	return applied, errors.Join(err, f.st.Close())
}

type snapshot struct {
	sn      *store.Snapshot
	signals *signals
}

// Persist writes the snapshot and ends its read transaction (raft's
// RecoverCluster never calls Release; a transaction left open would block
// the store's Close).
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	n, err := s.sn.WriteTo(sink)
	s.sn.Release()
	if err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil { // raft's file sink syncs the file
		return err
	}
	s.signals.snapshots.Add(1)
	s.signals.snapNanos.Store(int64(time.Since(start)))
	s.signals.snapBytes.Store(n)
	return nil
}

func (s *snapshot) Release() { s.sn.Release() }
