package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Bets: the exactly-once write path (Append, and StoreBets on it) and the
// per-agency digests; the reads are in scan.go.

// agencyKey is the key of an agency in the per-agency buckets.
func agencyKey(agency int) []byte { return fmt.Appendf(nil, "%06d", agency) }

// keyLen is the length of a key of the bets bucket: a bet's sequence number
// in 12 zero-padded digits, so that byte order is registry order.
const keyLen = 12

// putBets stores rows, the rows of n new bets of agency one per line (an
// open slice of mem, not yet kept), as one value of the bets bucket under
// the registry number of the first, its checksum record last (sums.go);
// the bucket's sequence counts the bets. One key per batch, not per bet:
// bbolt's Put (a cursor and a search from the root) was most of the cost
// of storing a bet, and every replica pays it. bbolt keeps the key and
// value slices until commit, so both are arena memory, which lives as long
// as the transaction.
func putBets(tx *bolt.Tx, mem *arena, agency int, rows []byte, n int) error {
	b := tx.Bucket(bucketBets)
	b.FillPercent = 1.0 // keys only ever grow: pack pages full
	seq := b.Sequence()
	var k [keyLen]byte
	for i, next := keyLen-1, seq+1; i >= 0; i-- {
		k[i] = byte('0' + next%10)
		next /= 10
	}
	value := mem.keep(appendSumRecord(rows, agency, n, batchSum(k[:], rows)))
	key := mem.alloc(keyLen)
	copy(key, k[:])
	if err := b.SetSequence(seq + uint64(n)); err != nil {
		return err
	}
	return b.Put(key, value)
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
	if err := putBets(tx, mem, agency, rows, stored); err != nil {
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
