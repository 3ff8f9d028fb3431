package central

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// betStore is what sessions need of the round's store: one central's file
// (local), or a replica's (Replica), whose writes go through the cluster's
// log. Tests wrap it to inject faults, as a disk that fails once.
type betStore interface {
	Append(agency int, first uint64, bets lottery.Bets) (store.Receipt, error)
	Committed(agency int) (committed uint64, finished bool, err error)
	Agency(agency int) (store.AgencyState, error)
	Finish(agency int, total uint64) error
	Delivered(agency int) error
	Round() (store.Round, error)
	Commits() uint64
	Backup(w io.Writer) (int64, error)
	// Summary is the store's counts and digests per agency; Record and
	// SetRecord, the drawn round's signed record.
	Summary() (store.Summary, error)
	Record() ([]byte, error)
	SetRecord(b []byte) error
	Close() error
}

// drawStore is what one central's draw needs: it verifies the store whole,
// which draws over its rows, and saves the result itself (a replica draws
// in the log, in the last finish's entry).
type drawStore interface {
	Verify() (store.Report, error)
	SaveDraw(at time.Time, agencies int, winners map[int][]string) error
}

// Replica is a central's node of a cluster (a *cluster.Node): the round's
// store, who leads, replica traffic, and the cluster's operations.
type Replica interface {
	betStore
	// Leader reports whether this node serves agencies, and otherwise the
	// leader's address ("" when unknown).
	Leader() (serving bool, leader string)
	// OnLeadership registers the central's part of leading: called with
	// true once the node caught up (the node serves once it returns nil),
	// and with false when it stops leading.
	OnLeadership(f func(ctx context.Context, leading bool) error)
	// Fatal yields the error that stopped the replica (an entry it could
	// not apply): the central stops with it.
	Fatal() <-chan error
	// Handoff runs the replicas' handshake on a replica's connection and
	// gives it to raft; certID is the replica its TLS certificate names.
	Handoff(conn net.Conn, certID int) (peer int, err error)
	// AppendAsync hands a batch to the log without waiting (the caller's
	// batches are appended in the order of its calls); wait returns what
	// Append would have.
	AppendAsync(agency int, first uint64, bets lottery.Bets) (wait func() (store.Receipt, error))
	// NewRound ends the round, which must be over, and begins the next.
	NewRound(agencies int) error
	// Verify holds the replica's store to itself: the leader announces no
	// winners before it passed.
	Verify() (store.Report, error)
	Status() cluster.Status
	Servers() ([]cluster.Server, error)
	// AddServer adds a node as a non-voter (or moves a member: readdress),
	// and returns its suffrage; RemoveServer removes one.
	AddServer(id int, addr string, readdress bool) (string, error)
	RemoveServer(id int) error
	// LeaderAdmin is the leader's admin URL, when known.
	LeaderAdmin() string
	Signals() cluster.Signals
}

var _ Replica = (*cluster.Node)(nil)

// local is one central's store: the round's file, replaced by the next
// round's when an operator begins one (NewRound). Every call holds the
// read lock; the replacement, the write lock.
type local struct {
	path string
	opts store.Options
	keep int // ArchiveKeep
	log  logformat.Logger

	mu sync.RWMutex
	st *store.Store
}

var (
	_ betStore  = (*local)(nil)
	_ drawStore = (*local)(nil)
)

func (l *local) cur() (*store.Store, func()) {
	l.mu.RLock()
	return l.st, l.mu.RUnlock
}

func (l *local) Append(agency int, first uint64, bets lottery.Bets) (store.Receipt, error) {
	st, done := l.cur()
	defer done()
	return st.Append(agency, first, bets)
}

func (l *local) Committed(agency int) (uint64, bool, error) {
	st, done := l.cur()
	defer done()
	return st.Committed(agency)
}

func (l *local) Agency(agency int) (store.AgencyState, error) {
	st, done := l.cur()
	defer done()
	return st.Agency(agency)
}

func (l *local) Finish(agency int, total uint64) error {
	st, done := l.cur()
	defer done()
	return st.Finish(agency, total)
}

func (l *local) Delivered(agency int) error {
	st, done := l.cur()
	defer done()
	return st.Delivered(agency)
}

func (l *local) Round() (store.Round, error) {
	st, done := l.cur()
	defer done()
	return st.Round()
}

func (l *local) Commits() uint64 {
	st, done := l.cur()
	defer done()
	return st.Commits()
}

func (l *local) Backup(w io.Writer) (int64, error) {
	st, done := l.cur()
	defer done()
	return st.Backup(w)
}

func (l *local) Summary() (store.Summary, error) {
	st, done := l.cur()
	defer done()
	return st.Summary()
}

func (l *local) Record() ([]byte, error) {
	st, done := l.cur()
	defer done()
	return st.Record()
}

func (l *local) SetRecord(b []byte) error {
	st, done := l.cur()
	defer done()
	return st.SetRecord(b)
}

func (l *local) Verify() (store.Report, error) {
	st, done := l.cur()
	defer done()
	return st.Verify()
}

func (l *local) SaveDraw(at time.Time, agencies int, winners map[int][]string) error {
	st, done := l.cur()
	defer done()
	return st.SaveDraw(at, agencies, winners)
}

func (l *local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st.Close()
}

// next archives the round, which must be over, and opens the next one's
// file with agencies. It returns the new round.
func (l *local) next(agencies int) (store.Round, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, err := l.st.Round()
	if err != nil {
		return store.Round{}, err
	}
	if !r.Over(agencies) {
		return store.Round{}, fmt.Errorf("%w (%d of %d agencies finished, drawn: %t, %d delivered)", store.ErrRoundOpen,
			len(r.Finished), r.AgencyCount(agencies), r.Drawn, len(r.Delivered))
	}
	if err := l.st.Close(); err != nil {
		return store.Round{}, err
	}
	st, r, err := archiveAndOpen(l.path, l.opts, l.keep, r, l.log)
	if err != nil {
		// The file is closed: the central cannot go on without one.
		if reopened, oerr := store.Open(l.path, l.opts); oerr == nil {
			l.st = reopened
		}
		return store.Round{}, err
	}
	if err := st.SetAgencies(agencies); err != nil {
		l.st = st
		return store.Round{}, err
	}
	r.Agencies, l.st = agencies, st
	return r, nil
}

// archiveAndOpen moves the closed file of the finished round r aside
// (pruning old archives to keep), then opens a new one.
func archiveAndOpen(path string, opts store.Options, keep int, r store.Round, log logformat.Logger) (*store.Store, store.Round, error) {
	dst, err := store.Archive(path, r.DrawTime)
	if err != nil {
		return nil, store.Round{}, err
	}
	log.Infof("action: archivar_ronda | result: success | archivo: %s | apuestas: %d", logformat.Value(dst), r.Bets)
	removed, err := store.PruneArchives(path, keep)
	for _, old := range removed {
		log.Infof("action: borrar_archivo | result: success | archivo: %s | conservar: %d", logformat.Value(old), keep)
	}
	if err != nil {
		log.Errorf("action: borrar_archivo | result: fail | error: %s", logformat.Value(err.Error()))
	}
	st, err := store.Open(path, opts)
	if err != nil {
		return nil, store.Round{}, err
	}
	nr, err := st.Round()
	if err != nil {
		st.Close()
		return nil, store.Round{}, err
	}
	return st, nr, nil
}
