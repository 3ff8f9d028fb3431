// Package store keeps the central's bets in a bbolt file, with the course's
// store_bets / load_bets semantics: bets are appended in registry order and
// each stored value is the bets.csv rows that the course's Python code
// writes for a batch, one per line.
//
// # Layout
//
// All keys and values are text, so `bbolt keys`, `bbolt get` and `bbolt stats`
// show what a person can read:
//
//	bucket    key                           value
//	bets      000000000001 (its first bet)  1,Santiago Lionel,Lorca,30904465,1999-03-17,2201 + a line per other bet of the batch
//	agencies  000001 (6-digit agency id)    26936 (bets committed for the agency)
//	finished  000001                        26936 (the total the agency announced)
//	winners   000001                        30904465,22714583 (documents; empty for none)
//	delivered 000001                        2026-11-26T18:13:00Z (the agency confirmed its winners)
//	digests   000001                        hex of the SHA-256 state over the agency's stored bets (lottery.Digest)
//	sums      000000000001 (as in bets)     1,230,9f3a01bc (the batch's agency, rows and CRC-32C: sums.go)
//	meta      format | round_started | draw_time | agencies | applied_index | cluster_id
//
// applied_index and cluster_id are a replica's (package cluster): the last
// log entry applied to the file, and the cluster it belongs to.
//
// A batch and the agency's committed count change in one transaction, so after
// a crash the count says exactly which of the agency's bets are stored.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and meta key names.
var (
	bucketBets     = []byte("bets")
	bucketAgencies = []byte("agencies")
	bucketFinished = []byte("finished")
	bucketWinners  = []byte("winners")
	bucketDelivery = []byte("delivered")
	bucketDigests  = []byte("digests")
	bucketMeta     = []byte("meta")

	keyFormat       = []byte("format")
	keyRoundStarted = []byte("round_started")
	keyDrawTime     = []byte("draw_time")
	keyAgencies     = []byte("agencies")
	keyCluster      = []byte("cluster_id")
)

// The store's formats (meta/format). Format 2 keeps a checksum record per
// batch (sums.go); a file of format 1, written before them, is converted
// when it is first opened for writing (every batch gets its record), and is
// read as it is when opened read-only (its rows held to their digests by
// Verify only).
const (
	formatRows = "tp0-bets-1"
	formatSums = "tp0-bets-2"
)

// Errors returned by the store. Wrapped errors keep bbolt's cause.
var (
	// ErrInvalidFile means the file is not a bets store (not bbolt, or another layout).
	ErrInvalidFile = errors.New("not a bets store file")
	// ErrDamaged means the file is a damaged store: empty, truncated, or
	// with a page bbolt cannot read. It comes wrapped with ErrInvalidFile.
	ErrDamaged = errors.New("damaged")
	// ErrLocked means another process holds the store file open.
	ErrLocked = errors.New("store file is in use by another process")
	// ErrNoFolder means a new store's folder does not exist.
	ErrNoFolder = errors.New("no such folder")
	// ErrClosed means the store was closed.
	ErrClosed = errors.New("store is closed")
	// ErrGap means a batch starts after the agency's committed bets: some are missing.
	ErrGap = errors.New("batch starts past the committed bets")
	// ErrAgencyMismatch means a bet in a batch belongs to another agency.
	ErrAgencyMismatch = errors.New("bet belongs to another agency")
	// ErrFinished means the agency already finished: it takes no more bets.
	ErrFinished = errors.New("agency already finished sending")
	// ErrDrawDone means the draw already ran: the round takes no more bets.
	ErrDrawDone = errors.New("the draw of this round already ran")
)

// BetError says which bet of a batch was refused. Nothing of the batch is stored.
type BetError struct {
	Index int // index in the batch
	Err   error
}

func (e *BetError) Error() string { return fmt.Sprintf("bet %d: %v", e.Index, e.Err) }
func (e *BetError) Unwrap() error { return e.Err }

// Options tune the store; the zero value is safe and durable.
type Options struct {
	// GroupCommit commits concurrent Append calls together: one transaction
	// and one fsync for the batches of every agency waiting (see group.go).
	// Each caller still returns only after the commit that holds its batch.
	GroupCommit bool
	// NoFreelistSync skips writing the freelist on commit (rebuilt on open).
	NoFreelistSync bool
	// NoSync commits without fsync: a commit survives the process's crash
	// (it is in the kernel's page cache) but not the machine's. Only a
	// replica's store, which the cluster's durable log can rebuild, may set
	// it (package cluster decides when the file is trusted); Sync makes
	// what was committed durable.
	NoSync bool
	// MmapSize is the initial size of bbolt's memory map (0: bbolt's
	// default). A map larger than the file means fewer remaps as it grows,
	// and a remap waits for every read transaction, a snapshot's included.
	MmapSize int
	// LockTimeout bounds the wait for another process's file lock; 0 means 1s.
	LockTimeout time.Duration
	// Now is the clock of the round's start and of deliveries; nil is time.Now.
	Now func() time.Time
	// ReadOnly opens an existing store for reading only (export, inspect):
	// a missing file is an error, and every write fails.
	ReadOnly bool
	// Check, when set, checks an existing file before bbolt maps it (see
	// FileCheck and InChild): bbolt trusts its pages, and a damaged page
	// tree can make it loop for ever or overflow its stack, which no
	// recover catches. Its error refuses the file.
	Check FileCheck
}

// Store is the bets store over one bbolt file. It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	format  string                // formatSums, or formatRows read-only
	damaged atomic.Pointer[error] // set once a read or write found the file damaged (damage.go)
	// Group commit (group.go): Appends queue here for the committer.
	appends   chan *writeReq
	quit      chan struct{} // closed by Close
	committed chan struct{} // closed when the committer has stopped
	groups    atomic.Uint64
	commits   atomic.Uint64
	now       func() time.Time
	// today is the UTC day the round started: bets are validated as of it,
	// on both ends, so a bet's validity (a birthdate not in the future) does
	// not change with the clock or the time zone between a run and its resume.
	today time.Time

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store at path. A file that is not a bets store,
// or a damaged one (empty, truncated, a page bbolt cannot read), is refused
// with an error wrapping ErrInvalidFile, and left untouched.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return nil, fmt.Errorf("open store %s: %w: not a regular file (%s)", path, ErrInvalidFile, st.Mode().Type())
	case err == nil && st.Size() == 0:
		return nil, fmt.Errorf("open store %s: %w (%w): the file is empty (0 bytes), which no store is (a new store is a path that does not exist)", path, ErrInvalidFile, ErrDamaged)
	case err == nil && opts.Check != nil:
		if err := opts.Check(path); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	case errors.Is(err, fs.ErrNotExist) && !opts.ReadOnly:
		if _, derr := os.Stat(filepath.Dir(path)); derr != nil {
			return nil, fmt.Errorf("open store %s: %w: the folder %s does not exist (create it, or set DB_PATH to a file in a folder that does)", path, ErrNoFolder, filepath.Dir(path))
		}
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db, err := openBolt(path, &bolt.Options{
		Timeout:         timeout,
		NoFreelistSync:  opts.NoFreelistSync,
		NoSync:          opts.NoSync,
		InitialMmapSize: opts.MmapSize,
		FreelistType:    bolt.FreelistMapType,
		ReadOnly:        opts.ReadOnly,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("open store %s: %w: %w", path, ErrInvalidFile, err)
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, now: time.Now, quit: make(chan struct{})}
	if opts.Now != nil {
		s.now = opts.Now
	}
	if err := s.init(opts.ReadOnly); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r, err := s.Round()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.today = r.Started.UTC()
	if opts.GroupCommit {
		s.appends, s.committed = make(chan *writeReq), make(chan struct{})
		go s.commit()
	}
	return s, nil
}

// openBolt is bolt.Open with its panics (a damaged freelist page, say) and
// faults on the map returned as ErrInvalidFile.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w (%w): %s: bbolt: %v", ErrInvalidFile, ErrDamaged, path, r)
		}
	}()
	return bolt.Open(path, 0o600, o)
}

// init creates the buckets of a new file, or checks the format of an old
// one, converting a file of format 1 when it may write.
func (s *Store) init(readOnly bool) error {
	check := func(tx *bolt.Tx) (string, error) {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return "", fmt.Errorf("%w: bbolt file with bucket %q and no %q bucket", ErrInvalidFile, firstBucket(tx), bucketMeta)
		}
		switch format := string(meta.Get(keyFormat)); {
		case format != formatRows && format != formatSums:
			return "", fmt.Errorf("%w: format %q, want %q (or %q, converted when first opened for writing)", ErrInvalidFile, format, formatSums, formatRows)
		case readOnly && tx.Bucket(bucketDigests) == nil:
			return "", fmt.Errorf("%w: no %q bucket (a store from before digests: open it read-write once)", ErrInvalidFile, bucketDigests)
		default:
			return format, nil
		}
	}
	if readOnly {
		return s.view(func(tx *bolt.Tx) error {
			format, err := check(tx)
			s.format = format
			return err
		})
	}
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			if name := firstBucket(tx); name != "" {
				return fmt.Errorf("%w: bbolt file with bucket %q and no %q bucket", ErrInvalidFile, name, bucketMeta)
			}
			for _, name := range [][]byte{bucketBets, bucketAgencies, bucketFinished, bucketWinners, bucketDelivery, bucketDigests, bucketMeta} {
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(keyFormat, []byte(formatSums)); err != nil {
				return err
			}
			s.format = formatSums
			return meta.Put(keyRoundStarted, []byte(s.now().UTC().Format(time.RFC3339Nano)))
		}
		format, err := check(tx)
		if err != nil {
			return err
		}
		s.format = formatSums
		if format == formatSums {
			return nil
		}
		// Format 1: files from before digests get the bucket (their
		// agencies with bets have no digest, which Welcome then leaves
		// unset), and every batch its checksum record.
		if _, err := tx.CreateBucketIfNotExists(bucketDigests); err != nil {
			return err
		}
		if err := sumAll(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte(formatSums))
	})
}

func firstBucket(tx *bolt.Tx) string {
	k, _ := tx.Cursor().First()
	return string(k)
}

// Commits returns how many write transactions committed (each one fsync,
// unless NoSync).
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Sync flushes what was committed to the disk (fsync): with NoSync, the
// file is durable only after it.
func (s *Store) Sync() error { return s.safe(s.db.Sync) }

// Close closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		if s.committed != nil {
			<-s.committed // the committer answered every Append it took
		}
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}

// update runs fn in a write transaction and commits it. Not db.Update: when
// bbolt panics on a damaged page, db.Update's deferred rollback reads the
// freelist again from the same file, can panic in turn, and then never
// lets go of bbolt's writer lock (Close hung on a fuzzed file); Rollback
// reads nothing and always lets it go.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	err := s.safe(func() error {
		tx, err := s.db.Begin(true)
		if err != nil {
			return err
		}
		defer func() {
			if r := recover(); r != nil {
				tx.Rollback() // ErrTxClosed if the panic came after the commit closed it
				panic(r)
			}
		}()
		if err := fn(tx); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if err == nil {
		s.commits.Add(1)
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := s.safe(func() error { return s.db.View(fn) })
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Count returns how many bets are stored.
func (s *Store) Count() (uint64, error) {
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketBets).Sequence() // bets are never deleted
		return nil
	})
	return n, err
}

// Check runs bbolt's consistency check over the whole file.
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
