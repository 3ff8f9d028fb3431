package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Bets: the exactly-once write path (Append, and StoreBets on it), the
// per-agency digests, and the streaming reads (LoadBets, ScanBets, Export).

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
	// Refuse before writing anything: a refused batch leaves its transaction
	// untouched, so it can share one with other agencies' (group commit).
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
		return nil
	}); err != nil {
		return Receipt{}, err
	}
	dig, err := loadDigest(tx, key, committed)
	if err != nil {
		return Receipt{}, err
	}
	betsB := tx.Bucket(bucketBets)
	betsB.FillPercent = 1.0 // keys only ever grow: pack pages full
	if err := bets.Each(func(i int, bet *lottery.Bet) error {
		if uint64(i) < skip {
			return nil
		}
		if dig != nil {
			dig.Add(bet)
		}
		return putBet(betsB, mem, bet)
	}); err != nil {
		return Receipt{}, err
	}
	if err := saveDigest(tx, mem, key, dig); err != nil {
		return Receipt{}, err
	}
	receipt := Receipt{Stored: bets.Len() - int(skip)}
	receipt.Committed = committed + uint64(receipt.Stored)
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
			c := tx.Bucket(bucketBets).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				bet, err := ParseRow(string(v)) // copies v out of the mmap
				if err != nil {
					return fmt.Errorf("bet %s: %w", k, err)
				}
				if !callOut(func() bool { return yield(bet, nil) }) {
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
		return scanTx(tx, func(bet *lottery.Bet) error { return callOut(func() error { return fn(bet) }) })
	})
}

// scanTx calls fn for every stored bet of tx in registry order, the bet's
// strings pointing into the memory map.
func scanTx(tx *bolt.Tx, fn func(*lottery.Bet) error) error {
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
}

// Export writes every stored bet to w as the course's bets.csv.
func (s *Store) Export(w io.Writer) error {
	return WriteCSV(w, s.LoadBets())
}
