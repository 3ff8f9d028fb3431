package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Bets: the exactly-once write path (Append, and StoreBets on it), the
// per-agency digests, and the streaming reads (LoadBets, ScanBets, Export).

// agencyKey is the key of an agency in the per-agency buckets.
func agencyKey(agency int) []byte { return fmt.Appendf(nil, "%06d", agency) }

// keyLen is the length of a key of the bets bucket: a bet's sequence number
// in 12 zero-padded digits, so that byte order is registry order.
const keyLen = 12

// putBets stores rows, the rows of n new bets one per line, as one value of
// the bets bucket, under the sequence number of the first; the bucket's
// sequence counts the bets. One key per batch, not per bet: bbolt's Put (a
// cursor and a search from the root) was most of the cost of storing a
// bet, and every replica pays it. bbolt keeps the key and value slices until
// commit, so both are arena memory, which lives as long as the transaction.
func putBets(b *bolt.Bucket, mem *arena, rows []byte, n int) error {
	seq := b.Sequence()
	key := mem.alloc(keyLen)
	for i, k := keyLen-1, seq+1; i >= 0; i-- {
		key[i] = byte('0' + k%10)
		k /= 10
	}
	if err := b.SetSequence(seq + uint64(n)); err != nil {
		return err
	}
	return b.Put(key, rows)
}

// rowRoom is the room a batch's rows are first given per bet (about twice
// a typical row); a longer batch moves once.
const rowRoom = 128

// arena hands out byte slices from large chunks; a slice stays valid after
// the arena moves on to a new chunk, until release. It makes storing a bet
// allocation-free on average. Its chunks are pooled: a transaction's arena
// is released once the transaction is over (bbolt has copied what it kept).
type arena struct {
	chunk  []byte
	chunks []*[]byte // from the pool, to give back
}

const arenaChunk = 64 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, arenaChunk); return &b }}

// alloc returns n bytes of arena memory for the caller to fill (they hold
// whatever was there).
func (a *arena) alloc(n int) []byte { return a.keep(a.open(n)[:n]) }

// open returns an empty slice to append to, with room for n bytes in arena
// memory; keep ends the append and hands out what it wrote (what was not
// kept is written over by the next open).
func (a *arena) open(n int) []byte {
	if cap(a.chunk)-len(a.chunk) < n {
		if n > arenaChunk {
			a.chunk = make([]byte, 0, n)
		} else {
			c := chunks.Get().(*[]byte)
			a.chunks = append(a.chunks, c)
			a.chunk = (*c)[:0]
		}
	}
	return a.chunk[len(a.chunk):len(a.chunk)]
}

// keep returns b, appended to a slice from open, as arena memory: the
// arena's next slices start after it. (A b that outgrew its room was moved
// by append and is kept where it is.)
func (a *arena) keep(b []byte) []byte {
	if free := a.chunk[len(a.chunk):cap(a.chunk)]; len(b) > 0 && len(b) <= len(free) && &b[0] == &free[0] {
		a.chunk = a.chunk[:len(a.chunk)+len(b)]
	}
	return b[:len(b):len(b)]
}

// release gives the arena's chunks back to the pool: no slice it handed
// out may be used after it.
func (a *arena) release() {
	for _, c := range a.chunks {
		chunks.Put(c)
	}
	*a = arena{}
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
func (s *Store) Append(agency int, first uint64, bets lottery.Bets) (Receipt, error) {
	var receipt Receipt
	err := s.write(func(tx *bolt.Tx, mem *arena) error {
		var err error
		receipt, err = s.appendTx(tx, mem, agency, first, bets)
		return err
	})
	if err != nil {
		return Receipt{}, err
	}
	return receipt, nil
}

// appendTx is Append inside tx, validating as of the round's day.
func (s *Store) appendTx(tx *bolt.Tx, mem *arena, agency int, first uint64, bets lottery.Bets) (Receipt, error) {
	return appendTxAt(tx, mem, agency, first, bets, s.today)
}

// detach returns err with no string of the bet in it: a batch's bets may
// be read from a buffer its caller reuses once Append returns, and the
// error outlives it.
func detach(err error) error {
	var ve *lottery.ValidationError
	if errors.As(err, &ve) {
		return &lottery.ValidationError{Field: ve.Field, Value: strings.Clone(ve.Value), Err: ve.Err}
	}
	return err
}

// appendTxAt is Append inside tx, validating as of day; every write to the
// bets goes through it. mem holds keys and rows until the transaction commits.
func appendTxAt(tx *bolt.Tx, mem *arena, agency int, first uint64, bets lottery.Bets, day time.Time) (Receipt, error) {
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
	if skip >= uint64(bets.Len()) {
		return Receipt{Committed: committed}, nil // all of it was stored before
	}
	dig, err := loadDigest(tx, key, committed)
	if err != nil {
		return Receipt{}, err
	}
	// One pass over the new bets checks each, adds it to the digest and
	// writes its row aside; the transaction is written only once all passed,
	// so a refused batch leaves it untouched and can share it with other
	// agencies' (group commit).
	rows, stored := mem.open(bets.Len()*rowRoom), 0
	if err := bets.Each(func(i int, bet *lottery.Bet) error {
		if uint64(i) < skip {
			return nil
		}
		if bet.Agency != agency {
			return &BetError{Index: i, Err: fmt.Errorf("%w: %d in a batch of agency %d", ErrAgencyMismatch, bet.Agency, agency)}
		}
		if err := bet.ValidateAt(day); err != nil {
			return &BetError{Index: i, Err: detach(err)}
		}
		if dig != nil {
			dig.Add(bet)
		}
		if stored > 0 {
			rows = append(rows, '\n')
		}
		rows = AppendRow(rows, bet)
		stored++
		return nil
	}); err != nil {
		return Receipt{}, err
	}
	betsB := tx.Bucket(bucketBets)
	betsB.FillPercent = 1.0 // keys only ever grow: pack pages full
	if err := putBets(betsB, mem, mem.keep(rows), stored); err != nil {
		return Receipt{}, err
	}
	if err := saveDigest(tx, mem, key, dig); err != nil {
		return Receipt{}, err
	}
	receipt := Receipt{Stored: stored}
	receipt.Committed = committed + uint64(stored)
	return receipt, agencies.Put(key, strconv.AppendUint(nil, receipt.Committed, 10))
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

// StoreBets appends bets in order, in one transaction, each after whatever
// its agency has committed. It is the course's store_bets, on the same path
// as Append: an invalid bet (its index in bets is in the *BetError) or a
// finished agency fails the whole call and nothing is stored.
func (s *Store) StoreBets(bets []lottery.Bet) error {
	return s.updateIn(func(tx *bolt.Tx, mem *arena) error {
		for start := 0; start < len(bets); {
			agency, end := bets[start].Agency, start+1
			for end < len(bets) && bets[end].Agency == agency {
				end++
			}
			committed, err := getUint(tx.Bucket(bucketAgencies), bucketAgencies, agencyKey(agency))
			if err != nil {
				return err
			}
			if _, err := s.appendTx(tx, mem, agency, committed, lottery.BetSlice(bets[start:end])); err != nil {
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
			return eachRow(tx, func(seq uint64, row []byte) error {
				bet, err := ParseRow(string(row)) // copies row out of the mmap
				if err != nil {
					return badRow(seq, err)
				}
				if !callOut(func() bool { return yield(bet, nil) }) {
					return errStop
				}
				return nil
			})
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
// with strings.Clone). LoadBets is the copying form.
func (s *Store) ScanBets(fn func(*lottery.Bet) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return scanTx(tx, nil, func(bet *lottery.Bet) error { return callOut(func() error { return fn(bet) }) })
	})
}

// ScanWinners is ScanBets for the bets that lottery.HasWon, the draw's
// scan; it returns how many bets it went over. A row whose number field
// rules it out (cannotWin) is not parsed: the scan costs little more than
// reading the file.
func (s *Store) ScanWinners(fn func(*lottery.Bet) error) (scanned uint64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		scanned, err = winnersTx(tx, func(bet *lottery.Bet) error { return callOut(func() error { return fn(bet) }) })
		return err
	})
	return scanned, err
}

// winnersTx is ScanWinners inside tx.
func winnersTx(tx *bolt.Tx, fn func(*lottery.Bet) error) (scanned uint64, err error) {
	err = scanTx(tx, &scanned, func(bet *lottery.Bet) error {
		if !lottery.HasWon(*bet) {
			return nil
		}
		return fn(bet)
	})
	return scanned, err
}

// scanTx calls fn for every stored bet of tx in registry order, the bet's
// strings pointing into the memory map. With winners set, it counts the
// rows into it and skips, unparsed, the bets that cannot win (a damaged
// row among them goes unnoticed by the draw; LoadBets and export parse
// every row).
func scanTx(tx *bolt.Tx, winners *uint64, fn func(*lottery.Bet) error) error {
	return eachRow(tx, func(seq uint64, row []byte) error {
		if winners != nil {
			if *winners++; cannotWin(row) {
				return nil
			}
		}
		bet, err := ParseRow(unsafe.String(&row[0], len(row)))
		if err != nil {
			return badRow(seq, err)
		}
		return fn(&bet)
	})
}

// eachRow calls fn with every stored row of tx in registry order, read from
// the memory map, and its bet's sequence number. A value holds the rows of
// one batch, one per line, under the first one's number (a store written by
// an earlier version has one row per value: the same layout).
func eachRow(tx *bolt.Tx, fn func(seq uint64, row []byte) error) error {
	c := tx.Bucket(bucketBets).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		seq, ok := parseKey(k)
		if !ok {
			return fmt.Errorf("%w: bucket %s key %q is not a bet's number", errDamagedData, bucketBets, k)
		}
		for {
			row, rest, more := bytes.Cut(v, newline)
			if len(row) == 0 {
				return badRow(seq, fmt.Errorf("%w: empty row", ErrRow))
			}
			if err := fn(seq, row); err != nil {
				return err
			}
			if !more {
				break
			}
			v, seq = rest, seq+1
		}
	}
	return nil
}

var newline = []byte{'\n'}

// badRow is the error of a stored row that does not parse: the file is
// damaged (Store.safe says so, naming it).
func badRow(seq uint64, err error) error {
	return fmt.Errorf("%w: bucket %s bet %0*d: %w", errDamagedData, bucketBets, keyLen, seq, err)
}

// parseKey reads a key of the bets bucket.
func parseKey(k []byte) (uint64, bool) {
	if len(k) != keyLen {
		return 0, false
	}
	var n uint64
	for _, c := range k {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// cannotWin reports, from its last field alone, that row's bet does not win:
// the number is plain decimal digits and not lottery.WinnerNumber. Any
// other row (the winning number, or a field to judge) is parsed whole, so
// the draw sees exactly the bets ParseRow and HasWon would pick.
func cannotWin(row []byte) bool {
	i := bytes.LastIndexByte(row, ',')
	digits := row[i+1:]
	if i < 0 || len(digits) == 0 || len(digits) > 9 {
		return false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n != lottery.WinnerNumber
}

// Export writes every stored bet to w as the course's bets.csv.
func (s *Store) Export(w io.Writer) error {
	return WriteCSV(w, s.LoadBets())
}
