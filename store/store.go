// Package store keeps the central's bets in a bbolt file, with the course's
// store_bets / load_bets semantics: bets are appended in registry order and
// each stored value is the bets.csv row that the course's Python code writes.
//
// # Layout
//
// All keys and values are text, so `bbolt keys`, `bbolt get` and `bbolt stats`
// show what a person can read:
//
//	bucket    key                          value
//	bets      000000000001 (12-digit seq)  1,Santiago Lionel,Lorca,30904465,1999-03-17,2201
//	agencies  000001 (6-digit agency id)   26936 (bets committed for the agency)
//	finished  000001                       26936 (the total the agency announced)
//	winners   000001                       30904465,22714583 (documents; empty for none)
//	delivered 000001                       2026-11-26T18:13:00Z (the agency confirmed its winners)
//	meta      format | round_started | draw_time
//
// A batch and the agency's committed count change in one transaction, so after
// a crash the count says exactly which of the agency's bets are stored.
package store

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/loteria-nacional/tp0/lottery"
)

// Bucket and meta key names.
var (
	bucketBets     = []byte("bets")
	bucketAgencies = []byte("agencies")
	bucketFinished = []byte("finished")
	bucketWinners  = []byte("winners")
	bucketDelivery = []byte("delivered")
	bucketMeta     = []byte("meta")

	keyFormat       = []byte("format")
	keyRoundStarted = []byte("round_started")
	keyDrawTime     = []byte("draw_time")
)

// formatVersion identifies files written by this package.
const formatVersion = "tp0-bets-1"

// Errors returned by the store. Wrapped errors keep bbolt's cause.
var (
	// ErrInvalidFile means the file is not a bets store (not bbolt, or another layout).
	ErrInvalidFile = errors.New("not a bets store file")
	// ErrLocked means another process holds the store file open.
	ErrLocked = errors.New("store file is in use by another process")
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
	// Coalesce commits concurrent Append calls together with bbolt's DB.Batch:
	// one fsync for several agencies' batches. Each caller still returns only
	// after the commit that holds its batch.
	Coalesce bool
	// MaxBatchDelay bounds how long a coalesced commit waits for company.
	MaxBatchDelay time.Duration
	// NoFreelistSync skips writing the freelist on commit (rebuilt on open).
	NoFreelistSync bool
	// LockTimeout bounds the wait for another process's file lock; 0 means 1s.
	LockTimeout time.Duration
}

// Store is the bets store over one bbolt file. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	coalesce bool
	now      func() time.Time

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store at path. A file that is not a bets store is
// refused with an error wrapping ErrInvalidFile, and left untouched.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        timeout,
		NoFreelistSync: opts.NoFreelistSync,
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open store %s: %w", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("open store %s: %w: %w", path, ErrInvalidFile, err)
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if opts.MaxBatchDelay > 0 {
		db.MaxBatchDelay = opts.MaxBatchDelay
	}
	s := &Store{db: db, coalesce: opts.Coalesce, now: time.Now}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// init creates the buckets of a new file, or checks the format of an old one.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if got := string(meta.Get(keyFormat)); got != formatVersion {
				return fmt.Errorf("%w: format %q, want %q", ErrInvalidFile, got, formatVersion)
			}
			return nil
		}
		if name := firstBucket(tx); name != "" {
			return fmt.Errorf("%w: bbolt file with bucket %q and no %q bucket", ErrInvalidFile, name, bucketMeta)
		}
		for _, name := range [][]byte{bucketBets, bucketAgencies, bucketFinished, bucketWinners, bucketDelivery, bucketMeta} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
		return meta.Put(keyRoundStarted, []byte(s.now().UTC().Format(time.RFC3339Nano)))
	})
}

func firstBucket(tx *bolt.Tx) string {
	k, _ := tx.Cursor().First()
	return string(k)
}

// Close closes the file. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// Path is the store file's path.
func (s *Store) Path() string { return s.db.Path() }

func (s *Store) update(fn func(*bolt.Tx) error) error {
	var err error
	if s.coalesce {
		err = s.db.Batch(fn)
	} else {
		err = s.db.Update(fn)
	}
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// agencyKey is the key of an agency in the per-agency buckets.
func agencyKey(agency int) []byte { return fmt.Appendf(nil, "%06d", agency) }

// keyLen is the length of a bet key: the bet's sequence number in 12
// zero-padded digits, so that byte order is registry order.
const keyLen = 12

// putBet appends bet to the bets bucket under the next sequence number.
// bbolt keeps the key and value slices until commit, so both are carved
// from mem, which lives as long as the transaction.
func putBet(b *bolt.Bucket, mem *arena, bet *lottery.Bet) error {
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	key := mem.alloc(keyLen)
	for i := keyLen - 1; i >= 0; i-- {
		key[i] = byte('0' + seq%10)
		seq /= 10
	}
	return b.Put(key, mem.row(bet))
}

// arena hands out byte slices from large chunks; a slice stays valid after
// the arena moves on to a new chunk. It makes storing a bet allocation-free
// on average.
type arena struct{ chunk []byte }

const arenaChunk = 64 << 10

func (a *arena) alloc(n int) []byte {
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, max(arenaChunk, n))
	}
	start := len(a.chunk)
	a.chunk = a.chunk[:start+n]
	return a.chunk[start : start+n : start+n]
}

// row returns bet's CSV row in arena memory.
func (a *arena) row(bet *lottery.Bet) []byte {
	// A row is at most 3 quoted names of 2x+2 bytes plus small fields.
	worst := 2*(len(bet.FirstName)+len(bet.LastName)+len(bet.Document)) + 64
	if cap(a.chunk)-len(a.chunk) < worst {
		a.chunk = make([]byte, 0, max(arenaChunk, worst))
	}
	start := len(a.chunk)
	a.chunk = AppendRow(a.chunk, bet)
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

func getUint(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if v == nil {
		return 0
	}
	n, _ := strconv.ParseUint(string(v), 10, 64)
	return n
}

// Receipt says what Append did with a batch.
type Receipt struct {
	Stored    int    // bets of the batch that were new and are now stored
	Committed uint64 // the agency's committed bets after the batch
}

// Append stores the bets of agency whose indexes in the agency's stream are
// first, first+1, ...: exactly-once. Bets below the agency's committed count
// were stored before (a retry) and are skipped; a batch starting past it fails
// with ErrGap, and so does any batch of a finished agency, with ErrFinished. Every bet is validated and must belong to agency; an invalid one
// fails the whole batch with a *BetError and nothing is stored. Append returns
// after the commit is on disk (fsync).
func (s *Store) Append(agency int, first uint64, bets []lottery.Bet) (Receipt, error) {
	var rc Receipt
	now := s.now()
	key := agencyKey(agency)
	err := s.update(func(tx *bolt.Tx) error {
		rc = Receipt{} // bbolt may run a coalesced function twice
		if tx.Bucket(bucketMeta).Get(keyDrawTime) != nil {
			return ErrDrawDone
		}
		if tx.Bucket(bucketFinished).Get(key) != nil {
			return fmt.Errorf("%w: agency %d", ErrFinished, agency)
		}
		agencies := tx.Bucket(bucketAgencies)
		committed := getUint(agencies, key)
		if first > committed {
			return fmt.Errorf("%w: agency %d batch starts at bet %d, %d committed", ErrGap, agency, first, committed)
		}
		skip := committed - first
		if skip >= uint64(len(bets)) {
			rc.Committed = committed
			return nil // all of it was stored before
		}
		betsB := tx.Bucket(bucketBets)
		betsB.FillPercent = 1.0 // keys only ever grow: pack pages full
		var mem arena
		for i := int(skip); i < len(bets); i++ {
			bet := &bets[i]
			if bet.Agency != agency {
				return &BetError{Index: i, Err: fmt.Errorf("%w: %d in a batch of agency %d", ErrAgencyMismatch, bet.Agency, agency)}
			}
			if err := bet.ValidateAt(now); err != nil {
				return &BetError{Index: i, Err: err}
			}
			if err := putBet(betsB, &mem, bet); err != nil {
				return err
			}
		}
		rc.Stored = len(bets) - int(skip)
		rc.Committed = committed + uint64(rc.Stored)
		return agencies.Put(key, strconv.AppendUint(nil, rc.Committed, 10))
	})
	if err != nil {
		return Receipt{}, err
	}
	return rc, nil
}

// StoreBets appends bets in order, in one transaction, after whatever each
// bet's agency has committed. It is the course's store_bets.
func (s *Store) StoreBets(bets []lottery.Bet) error {
	now := s.now()
	return s.update(func(tx *bolt.Tx) error {
		betsB, agencies := tx.Bucket(bucketBets), tx.Bucket(bucketAgencies)
		var mem arena
		for i := range bets {
			if err := bets[i].ValidateAt(now); err != nil {
				return &BetError{Index: i, Err: err}
			}
			if err := putBet(betsB, &mem, &bets[i]); err != nil {
				return err
			}
			key := agencyKey(bets[i].Agency)
			if err := agencies.Put(key, strconv.AppendUint(nil, getUint(agencies, key)+1, 10)); err != nil {
				return err
			}
		}
		return nil
	})
}

// LoadBets yields every stored bet in registry order, streaming from one read
// transaction: memory does not grow with the number of bets. It is the
// course's load_bets.
func (s *Store) LoadBets() iter.Seq2[lottery.Bet, error] {
	return func(yield func(lottery.Bet, error) bool) {
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketBets).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				bet, err := ParseRow(string(v)) // copies v out of the mmap
				if err != nil {
					return fmt.Errorf("bet %s: %w", k, err)
				}
				if !yield(bet, nil) {
					return errStop
				}
			}
			return nil
		})
		if err != nil && err != errStop {
			yield(lottery.Bet{}, err)
		}
	}
}

var errStop = errors.New("stop")

// ScanBets calls fn for every stored bet in registry order, from one read
// transaction, without allocating: the bet's strings point into the store's
// memory map and are valid only until fn returns (copy what you keep, e.g.
// with strings.Clone). The draw uses it; LoadBets is the copying form.
func (s *Store) ScanBets(fn func(*lottery.Bet) error) error {
	return s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBets).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(v) == 0 {
				return fmt.Errorf("bet %s: %w: empty value", k, ErrRow)
			}
			bet, err := ParseRow(unsafe.String(&v[0], len(v)))
			if err != nil {
				return fmt.Errorf("bet %s: %w", k, err)
			}
			if err := fn(&bet); err != nil {
				return err
			}
		}
		return nil
	})
}

// Export writes every stored bet to w as the course's bets.csv.
func (s *Store) Export(w io.Writer) error {
	return WriteCSV(w, s.LoadBets())
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

// Committed returns how many of agency's bets are stored, and whether the
// agency has finished.
func (s *Store) Committed(agency int) (committed uint64, finished bool, err error) {
	key := agencyKey(agency)
	err = s.view(func(tx *bolt.Tx) error {
		committed = getUint(tx.Bucket(bucketAgencies), key)
		finished = tx.Bucket(bucketFinished).Get(key) != nil
		return nil
	})
	return committed, finished, err
}

// Finish records durably that agency sent all its total bets.
func (s *Store) Finish(agency int, total uint64) error {
	key := agencyKey(agency)
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFinished).Put(key, strconv.AppendUint(nil, total, 10))
	})
}

// Delivered records that agency confirmed receipt of its winners.
func (s *Store) Delivered(agency int) error {
	key := agencyKey(agency)
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDelivery).Put(key, []byte(s.now().UTC().Format(time.RFC3339Nano)))
	})
}

// Round is the state of the round kept in the store.
type Round struct {
	Started   time.Time
	Bets      uint64
	Committed map[int]uint64 // per agency
	Finished  map[int]bool
	Drawn     bool
	DrawTime  time.Time
	Winners   map[int][]string // per agency, when Drawn
	Delivered map[int]bool     // agencies that confirmed their winners
}

// Round reads the state of the round.
func (s *Store) Round() (Round, error) {
	r := Round{Committed: map[int]uint64{}, Finished: map[int]bool{}, Winners: map[int][]string{}, Delivered: map[int]bool{}}
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		r.Started, _ = time.Parse(time.RFC3339Nano, string(meta.Get(keyRoundStarted)))
		if v := meta.Get(keyDrawTime); v != nil {
			r.Drawn = true
			r.DrawTime, _ = time.Parse(time.RFC3339Nano, string(v))
		}
		r.Bets = tx.Bucket(bucketBets).Sequence()
		each := func(name []byte, fn func(agency int, v []byte)) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				a, err := strconv.Atoi(string(k))
				if err != nil {
					return fmt.Errorf("%w: %s key %q", ErrInvalidFile, name, k)
				}
				fn(a, v)
				return nil
			})
		}
		if err := each(bucketAgencies, func(a int, v []byte) { r.Committed[a], _ = strconv.ParseUint(string(v), 10, 64) }); err != nil {
			return err
		}
		if err := each(bucketFinished, func(a int, _ []byte) { r.Finished[a] = true }); err != nil {
			return err
		}
		if err := each(bucketDelivery, func(a int, _ []byte) { r.Delivered[a] = true }); err != nil {
			return err
		}
		return each(bucketWinners, func(a int, v []byte) { r.Winners[a] = splitDocs(string(v)) })
	})
	return r, err
}

func splitDocs(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

// SaveDraw records the draw's result, per agency, for agencies 1..agencies.
// After it the round takes no more bets.
func (s *Store) SaveDraw(at time.Time, agencies int, winners map[int][]string) error {
	return s.update(func(tx *bolt.Tx) error {
		wb := tx.Bucket(bucketWinners)
		for a := 1; a <= agencies; a++ {
			if err := wb.Put(agencyKey(a), []byte(strings.Join(winners[a], ","))); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyDrawTime, []byte(at.UTC().Format(time.RFC3339Nano)))
	})
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

// ArchiveName returns the name under which a finished round's file is moved
// aside: the store's name with the draw time, e.g. bets-20261126T181300Z.db.
func ArchiveName(path string, drawTime time.Time) string {
	base := strings.TrimSuffix(path, ".db")
	return base + "-" + drawTime.UTC().Format("20060102T150405.000Z") + ".db"
}

// Archive moves the closed store file at path aside to ArchiveName.
func Archive(path string, drawTime time.Time) (string, error) {
	dst := ArchiveName(path, drawTime)
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("archive round: %w", err)
	}
	return dst, nil
}
