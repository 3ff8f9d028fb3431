package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Round state: per-agency counts and finishes, the draw, deliveries, the
// round's agency count, and the parsing that refuses garbled values.

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
	return s.write(func(tx *bolt.Tx, _ *arena) error {
		return tx.Bucket(bucketFinished).Put(key, strconv.AppendUint(nil, total, 10))
	})
}

// Delivered records that agency confirmed receipt of its winners (once:
// the first confirmation's time stays).
func (s *Store) Delivered(agency int) error {
	return s.write(func(tx *bolt.Tx, _ *arena) error {
		_, err := deliverTx(tx, agency, s.now())
		return err
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

// Over reports whether the round is finished: drawn, and every one of its
// agencies (def of them when it recorded none) confirmed its winners. Only
// a finished round is archived and followed by a new one.
func (r Round) Over(def int) bool { return r.Drawn && len(r.Delivered) >= r.AgencyCount(def) }

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
	return s.update(func(tx *bolt.Tx) error { return saveDrawTx(tx, at, agencies, winners) })
}

// saveDrawTx is SaveDraw inside tx.
func saveDrawTx(tx *bolt.Tx, at time.Time, agencies int, winners map[int][]string) error {
	wb := tx.Bucket(bucketWinners)
	for a := 1; a <= agencies; a++ {
		if err := wb.Put(agencyKey(a), []byte(strings.Join(winners[a], ","))); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyDrawTime, []byte(at.UTC().Format(time.RFC3339Nano)))
}
