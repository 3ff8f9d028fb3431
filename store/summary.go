package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Replicas compare their stores through the log, as etcd's members compare
// the hash of their state at one revision: the leader appends a checkpoint
// entry (CmdCheckpoint) with the Summary of its store at the index it
// applied last, having held back every other proposal meanwhile, and each
// replica, applying it, holds its own store at that index to it. A replica
// that differs fails the entry with ErrDiverged (package cluster stops it;
// its store is rebuilt from the snapshot and the log at its next start).

// ErrDiverged means this replica's store is not the leader's at the same
// log index: what applying the same log gave differs.
var ErrDiverged = errors.New("this replica's store differs from the leader's at the same log index")

// AgencySummary is an agency's state in a Summary.
type AgencySummary struct {
	Committed uint64
	Digest    [lottery.DigestSize]byte // the digest's sum (zero: none kept)
	Finished  uint64                   // the total it finished with (0: not finished)
	Winners   [8]byte                  // a hash of its stored winners (zero: not drawn)
}

// Summary is what a checkpoint holds of a store: its bets, each agency's
// count, digest, finish and winners, and the draw's time.
type Summary struct {
	// At is the log index of the last entry applied to the store.
	At       uint64
	Bets     uint64
	DrawTime time.Time // zero: not drawn
	Agencies map[int]AgencySummary
}

// Summary reads the store's Summary.
func (s *Store) Summary() (Summary, error) {
	var sum Summary
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		sum, err = summaryTx(tx)
		return err
	})
	return sum, err
}

func summaryTx(tx *bolt.Tx) (Summary, error) {
	meta := tx.Bucket(bucketMeta)
	at, err := getUint(meta, bucketMeta, keyApplied)
	if err != nil {
		return Summary{}, err
	}
	drawn, err := getTime(meta, bucketMeta, keyDrawTime)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{At: at, Bets: tx.Bucket(bucketBets).Sequence(), DrawTime: drawn, Agencies: map[int]AgencySummary{}}
	get := func(id int) AgencySummary { return sum.Agencies[id] }
	err = eachAgency(tx, bucketAgencies, func(id int, key, v []byte) error {
		a := get(id)
		if a.Committed, err = parseUint(bucketAgencies, key, v); err != nil {
			return err
		}
		d, err := loadDigest(tx, key, a.Committed)
		if err != nil {
			return err
		}
		if d != nil {
			a.Digest = d.Sum()
		}
		sum.Agencies[id] = a
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	err = eachAgency(tx, bucketFinished, func(id int, key, v []byte) error {
		a := get(id)
		a.Finished, err = parseUint(bucketFinished, key, v)
		sum.Agencies[id] = a
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	err = eachAgency(tx, bucketWinners, func(id int, _, v []byte) error {
		a := get(id)
		h := sha256.Sum256(v)
		copy(a.Winners[:], h[:])
		sum.Agencies[id] = a
		return nil
	})
	return sum, err
}

// eachAgency calls fn with each agency key of bucket name.
func eachAgency(tx *bolt.Tx, name []byte, fn func(id int, key, v []byte) error) error {
	return tx.Bucket(name).ForEach(func(k, v []byte) error {
		id, ok := atoiBytes(k)
		if !ok {
			return fmt.Errorf("%w: bucket %s key %q is not an agency id", ErrInvalidFile, name, k)
		}
		return fn(id, k, v)
	})
}

// Diff says how sum, this store's, differs from the leader's: "" when it
// does not.
func (sum Summary) Diff(leader Summary) string {
	switch {
	case sum.Bets != leader.Bets:
		return fmt.Sprintf("%d bets stored, the leader's %d", sum.Bets, leader.Bets)
	case !sum.DrawTime.Equal(leader.DrawTime):
		return fmt.Sprintf("drawn at %s, the leader's at %s", stamp(sum.DrawTime), stamp(leader.DrawTime))
	}
	ids := map[int]bool{}
	for id := range sum.Agencies {
		ids[id] = true
	}
	for id := range leader.Agencies {
		ids[id] = true
	}
	for id := 1; len(ids) > 0; id++ {
		if !ids[id] {
			continue
		}
		delete(ids, id)
		a, l := sum.Agencies[id], leader.Agencies[id]
		switch {
		case a.Committed != l.Committed:
			return fmt.Sprintf("agency %d: %d bets committed, the leader's %d", id, a.Committed, l.Committed)
		case a.Digest != l.Digest:
			return fmt.Sprintf("agency %d: digest %s, the leader's %s", id, hex.EncodeToString(a.Digest[:6]), hex.EncodeToString(l.Digest[:6]))
		case a.Finished != l.Finished:
			return fmt.Sprintf("agency %d: finished with %d, the leader's %d", id, a.Finished, l.Finished)
		case a.Winners != l.Winners:
			return fmt.Sprintf("agency %d: other winners than the leader's", id)
		}
	}
	return ""
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

var (
	keyClusterVersion  = []byte("cluster_version")
	keyCheckpointIndex = []byte("checkpoint_index")
)

// ClusterVersion is the entry format every member reads, as the log last
// set it (CmdVersion): 1 until it is raised.
func (s *Store) ClusterVersion() (int, error) {
	v := 1
	err := s.view(func(tx *bolt.Tx) error {
		n, err := getUint(tx.Bucket(bucketMeta), bucketMeta, keyClusterVersion)
		if n > 0 {
			v = int(n)
		}
		return err
	})
	return v, err
}

// LastCheckpoint is the log index of the last checkpoint this store was
// held to (0: none).
func (s *Store) LastCheckpoint() (uint64, error) {
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = getUint(tx.Bucket(bucketMeta), bucketMeta, keyCheckpointIndex)
		return err
	})
	return n, err
}

// checkpointTx holds tx's store, whose last applied entry is prev, to the
// leader's summary of its store at index sum.At; at is the checkpoint
// entry's index. A checkpoint of another index (an entry came between:
// deterministic, the same on every replica) is skipped.
func checkpointTx(tx *bolt.Tx, prev, at uint64, leader *Summary) (checked bool, err error) {
	if leader.At != prev {
		return false, nil
	}
	own, err := summaryTx(tx)
	if err != nil {
		return false, err
	}
	if diff := own.Diff(*leader); diff != "" {
		return false, fmt.Errorf("%w: at log index %d, %s", ErrDiverged, prev, diff)
	}
	return true, tx.Bucket(bucketMeta).Put(keyCheckpointIndex, strconv.AppendUint(nil, at, 10))
}
