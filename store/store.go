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
//	digests   000001                       hex of the SHA-256 state over the agency's stored bets (lottery.Digest)
//	meta      format | round_started | draw_time | agencies
//
// A batch and the agency's committed count change in one transaction, so after
// a crash the count says exactly which of the agency's bets are stored.
package store

import (
	"encoding/hex"
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
	bucketDigests  = []byte("digests")
	bucketMeta     = []byte("meta")

	keyFormat       = []byte("format")
	keyRoundStarted = []byte("round_started")
	keyDrawTime     = []byte("draw_time")
	keyAgencies     = []byte("agencies")
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
	// today is the UTC day the round started: bets are validated as of it,
	// on both ends, so a bet's validity (a birthdate not in the future) does
	// not change with the clock or the time zone between a run and its resume.
	today time.Time

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
	r, err := s.Round()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.today = r.Started.UTC()
	return s, nil
}

// init creates the buckets of a new file, or checks the format of an old one.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if got := string(meta.Get(keyFormat)); got != formatVersion {
				return fmt.Errorf("%w: format %q, want %q", ErrInvalidFile, got, formatVersion)
			}
			// Files from before digests get the bucket; their agencies with
			// bets have no digest, which Welcome then leaves unset.
			_, err := tx.CreateBucketIfNotExists(bucketDigests)
			return err
		}
		if name := firstBucket(tx); name != "" {
			return fmt.Errorf("%w: bbolt file with bucket %q and no %q bucket", ErrInvalidFile, name, bucketMeta)
		}
		for _, name := range [][]byte{bucketBets, bucketAgencies, bucketFinished, bucketWinners, bucketDelivery, bucketDigests, bucketMeta} {
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

// getUint reads a count; a missing key is 0. A value that is not a number
// is ErrInvalidFile naming bucket and key: reading it as 0 would make an
// agency send its bets again.
func getUint(b *bolt.Bucket, name, key []byte) (uint64, error) {
	return parseUint(name, key, b.Get(key))
}

func parseUint(name, key, v []byte) (uint64, error) {
	if v == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bucket %s key %s: %q is not a count", ErrInvalidFile, name, key, v)
	}
	return n, nil
}

// getTime reads an RFC 3339 time; a missing key is the zero time.
func getTime(b *bolt.Bucket, name, key []byte) (time.Time, error) {
	v := b.Get(key)
	if v == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: bucket %s key %s: %q is not an RFC 3339 time", ErrInvalidFile, name, key, v)
	}
	return t, nil
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
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		rc, err = s.appendTx(tx, &arena{}, agency, first, bets)
		return err
	})
	if err != nil {
		return Receipt{}, err
	}
	return rc, nil
}

// appendTx is Append inside tx; every write to the bets goes through it.
// mem holds keys and rows until the transaction commits.
func (s *Store) appendTx(tx *bolt.Tx, mem *arena, agency int, first uint64, bets []lottery.Bet) (Receipt, error) {
	key := agencyKey(agency)
	if tx.Bucket(bucketMeta).Get(keyDrawTime) != nil {
		return Receipt{}, ErrDrawDone
	}
	if tx.Bucket(bucketFinished).Get(key) != nil {
		return Receipt{}, fmt.Errorf("%w: agency %d", ErrFinished, agency)
	}
	agencies := tx.Bucket(bucketAgencies)
	committed, err := getUint(agencies, bucketAgencies, key)
	if err != nil {
		return Receipt{}, err
	}
	if first > committed {
		return Receipt{}, fmt.Errorf("%w: agency %d batch starts at bet %d, %d committed", ErrGap, agency, first, committed)
	}
	skip := committed - first
	if skip >= uint64(len(bets)) {
		return Receipt{Committed: committed}, nil // all of it was stored before
	}
	dig, err := loadDigest(tx, key, committed)
	if err != nil {
		return Receipt{}, err
	}
	betsB := tx.Bucket(bucketBets)
	betsB.FillPercent = 1.0 // keys only ever grow: pack pages full
	for i := int(skip); i < len(bets); i++ {
		bet := &bets[i]
		if bet.Agency != agency {
			return Receipt{}, &BetError{Index: i, Err: fmt.Errorf("%w: %d in a batch of agency %d", ErrAgencyMismatch, bet.Agency, agency)}
		}
		if err := bet.ValidateAt(s.today); err != nil {
			return Receipt{}, &BetError{Index: i, Err: err}
		}
		if err := putBet(betsB, mem, bet); err != nil {
			return Receipt{}, err
		}
		if dig != nil {
			dig.Add(bet)
		}
	}
	if err := saveDigest(tx, mem, key, dig); err != nil {
		return Receipt{}, err
	}
	rc := Receipt{Stored: len(bets) - int(skip)}
	rc.Committed = committed + uint64(rc.Stored)
	return rc, agencies.Put(key, strconv.AppendUint(nil, rc.Committed, 10))
}

// loadDigest returns the running digest of agency key's committed bets: a
// new one for an agency with none, nil (not kept) for one whose bets were
// stored by a version without digests.
func loadDigest(tx *bolt.Tx, key []byte, committed uint64) (*lottery.Digest, error) {
	v := tx.Bucket(bucketDigests).Get(key)
	if v == nil {
		if committed > 0 {
			return nil, nil
		}
		return lottery.NewDigest(), nil
	}
	state, err := hex.DecodeString(string(v))
	d := &lottery.Digest{}
	if err == nil {
		err = d.UnmarshalBinary(state)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s key %s: %v", ErrInvalidFile, bucketDigests, key, err)
	}
	return d, nil
}

func saveDigest(tx *bolt.Tx, mem *arena, key []byte, d *lottery.Digest) error {
	if d == nil {
		return nil
	}
	state, err := d.MarshalBinary()
	if err != nil {
		return err
	}
	v := mem.alloc(hex.EncodedLen(len(state)))
	hex.Encode(v, state)
	return tx.Bucket(bucketDigests).Put(key, v)
}

// AgencyState is what the central tells an agency on hello.
type AgencyState struct {
	Committed uint64 // bets stored
	Finished  bool   // the agency finished sending
	// Digest is the lottery.Digest sum of the stored bets; HasDigest is
	// false for bets stored by a version without digests.
	Digest    [lottery.DigestSize]byte
	HasDigest bool
}

// Agency returns agency's state.
func (s *Store) Agency(agency int) (AgencyState, error) {
	key := agencyKey(agency)
	var st AgencyState
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		if st.Committed, err = getUint(tx.Bucket(bucketAgencies), bucketAgencies, key); err != nil {
			return err
		}
		st.Finished = tx.Bucket(bucketFinished).Get(key) != nil
		d, err := loadDigest(tx, key, st.Committed)
		if err != nil || d == nil {
			return err
		}
		st.Digest, st.HasDigest = d.Sum(), true
		return nil
	})
	return st, err
}

// StoreBets appends bets in order, in one transaction, each after whatever
// its agency has committed. It is the course's store_bets, on the same path
// as Append: an invalid bet (its index in bets is in the *BetError) or a
// finished agency fails the whole call and nothing is stored.
func (s *Store) StoreBets(bets []lottery.Bet) error {
	return s.update(func(tx *bolt.Tx) error {
		mem := &arena{}
		for start := 0; start < len(bets); {
			agency, end := bets[start].Agency, start+1
			for end < len(bets) && bets[end].Agency == agency {
				end++
			}
			committed, err := getUint(tx.Bucket(bucketAgencies), bucketAgencies, agencyKey(agency))
			if err != nil {
				return err
			}
			if _, err := s.appendTx(tx, mem, agency, committed, bets[start:end]); err != nil {
				var be *BetError
				if errors.As(err, &be) {
					be.Index += start
				}
				return err
			}
			start = end
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
		committed, err = getUint(tx.Bucket(bucketAgencies), bucketAgencies, key)
		finished = tx.Bucket(bucketFinished).Get(key) != nil
		return err
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
	Agencies  int // the AGENCIES the round runs with; 0 in a file that never recorded it
	Bets      uint64
	Committed map[int]uint64 // per agency
	Finished  map[int]bool
	Drawn     bool
	DrawTime  time.Time
	Winners   map[int][]string // per agency, when Drawn
	Delivered map[int]bool     // agencies that confirmed their winners
}

// Begun reports whether anything happened in the round: a bet stored, an
// agency finished, the draw. An empty round may still change its agencies.
func (r Round) Begun() bool { return r.Bets > 0 || len(r.Finished) > 0 || r.Drawn }

// AgencyCount is the round's agency count, or def when it was not recorded.
func (r Round) AgencyCount(def int) int {
	if r.Agencies > 0 {
		return r.Agencies
	}
	return def
}

// Round reads the state of the round. A value that does not parse is
// ErrInvalidFile naming its bucket and key.
func (s *Store) Round() (Round, error) {
	r := Round{Committed: map[int]uint64{}, Finished: map[int]bool{}, Winners: map[int][]string{}, Delivered: map[int]bool{}}
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var err error
		if r.Started, err = getTime(meta, bucketMeta, keyRoundStarted); err != nil {
			return err
		}
		if r.DrawTime, err = getTime(meta, bucketMeta, keyDrawTime); err != nil {
			return err
		}
		r.Drawn = meta.Get(keyDrawTime) != nil
		n, err := getUint(meta, bucketMeta, keyAgencies)
		if err != nil {
			return err
		}
		r.Agencies = int(n)
		r.Bets = tx.Bucket(bucketBets).Sequence()
		each := func(name []byte, fn func(agency int, v []byte) error) error {
			return tx.Bucket(name).ForEach(func(k, v []byte) error {
				a, err := strconv.Atoi(string(k))
				if err != nil {
					return fmt.Errorf("%w: bucket %s key %q is not an agency id", ErrInvalidFile, name, k)
				}
				return fn(a, v)
			})
		}
		if err := each(bucketAgencies, func(a int, v []byte) error {
			r.Committed[a], err = parseUint(bucketAgencies, agencyKey(a), v)
			return err
		}); err != nil {
			return err
		}
		if err := each(bucketFinished, func(a int, _ []byte) error { r.Finished[a] = true; return nil }); err != nil {
			return err
		}
		if err := each(bucketDelivery, func(a int, _ []byte) error { r.Delivered[a] = true; return nil }); err != nil {
			return err
		}
		return each(bucketWinners, func(a int, v []byte) error { r.Winners[a] = splitDocs(string(v)); return nil })
	})
	return r, err
}

// SetAgencies records how many agencies the round runs with.
func (s *Store) SetAgencies(n int) error {
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyAgencies, strconv.AppendInt(nil, int64(n), 10))
	})
}

// Today is the day bets are validated as of: the UTC day the round started.
func (s *Store) Today() time.Time { return s.today }

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
