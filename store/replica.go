package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// The replicated write path: a replica's store applies the entries of the
// cluster's log (package cluster decodes them into Commands). Everything an
// entry needs is in it, the leader's clock included, so every replica
// computes the same state: the same rows, counts, digests, finishes, draw
// time and winners. A batch of entries is one bbolt transaction that also
// records the last applied index, so a replica restarted after a crash skips
// exactly what it had applied: no bet twice, none hidden.

// CommandKind is the kind of a replicated write.
type CommandKind byte

// The replicated writes.
const (
	// CmdBegin starts the round: its start time (the day bets are
	// validated as of) and AGENCIES. A begun round ignores it.
	CmdBegin CommandKind = iota + 1
	// CmdAppend stores a batch of an agency's bets by offset, as Append.
	CmdAppend
	// CmdFinish records an agency's finish, as Finish; the finish that
	// completes the set of agencies runs the draw in the same transaction,
	// at the entry's time.
	CmdFinish
	// CmdDelivered records that an agency has its winners, at the entry's time.
	CmdDelivered
	// CmdNewRound ends a finished round and begins the next (At, Agencies):
	// Apply checks that the round is over (ErrRoundOpen otherwise) and
	// reports NewRound; the caller archives the file and begins the next
	// round in a new one (package cluster), at the same entry.
	CmdNewRound
	// CmdVersion raises the cluster's version (Version): the entry format
	// every member reads. It never lowers it.
	CmdVersion
	// CmdCheckpoint holds the store to the leader's Summary of its own at
	// the same log index (summary.go).
	CmdCheckpoint
)

// Command is one replicated write.
type Command struct {
	Kind     CommandKind
	Agency   int
	First    uint64       // CmdAppend
	Bets     lottery.Bets // CmdAppend
	Total    uint64       // CmdFinish
	Agencies int          // CmdBegin, CmdNewRound
	At       time.Time    // the leader's clock: CmdBegin, CmdFinish, CmdDelivered, CmdNewRound
	Version  int          // CmdVersion
	Summary  *Summary     // CmdCheckpoint
}

// Entry is a command at its index in the log.
type Entry struct {
	Index uint64
	Cmd   Command
}

// Applied is an entry's outcome: what Append (or Finish) would have
// returned. Err holds a refusal (ErrGap, a *BetError, ErrFinished,
// ErrDrawDone, ErrIncomplete): deterministic, the same on every replica.
type Applied struct {
	Receipt Receipt
	Err     error
	Drawn   bool // this entry ran the draw
	Over    bool // this entry (a delivery) finished the round: drawn, every winner delivered
	// NewRound: this entry (CmdNewRound) ended the round, which is over; the
	// next one begins in a new file.
	NewRound bool
	Skipped  bool // at or below the applied index: applied before
	// Checked: this entry (CmdCheckpoint) held the store to the leader's,
	// and it was the same.
	Checked bool
}

// ErrIncomplete means a finish announced more bets than are committed.
var ErrIncomplete = errors.New("finish announces more bets than are committed")

// ErrRoundOpen means a new round was asked while the round is not over
// (not drawn, or some agency has not confirmed its winners).
var ErrRoundOpen = errors.New("the round is not over: it is not drawn, or some agency has not received its winners")

// ErrUnknownCommand means an entry this version cannot apply: the replica
// stops rather than diverge.
var ErrUnknownCommand = errors.New("unknown replicated command")

var keyApplied = []byte("applied_index")

// AppliedIndex returns the index of the last entry applied (0: none).
func (s *Store) AppliedIndex() (uint64, error) {
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = getUint(tx.Bucket(bucketMeta), bucketMeta, keyApplied)
		return err
	})
	return n, err
}

// Apply applies entries, in order, in one transaction, and records the
// last one's index in it. Entries at or below the recorded index are
// skipped. It returns each entry's outcome; an error (a damaged store, a
// failing disk, ErrUnknownCommand) means none was applied.
func (s *Store) Apply(entries []Entry) ([]Applied, error) {
	out := make([]Applied, len(entries))
	var today *time.Time
	err := s.updateIn(func(tx *bolt.Tx, mem *arena) error {
		meta := tx.Bucket(bucketMeta)
		applied, err := getUint(meta, bucketMeta, keyApplied)
		if err != nil {
			return err
		}
		last := applied
		for i, e := range entries {
			if e.Index <= applied {
				out[i].Skipped = true
				continue
			}
			if out[i], err = s.applyTx(tx, mem, e, last, &today); err != nil {
				return fmt.Errorf("entry %d: %w", e.Index, err)
			}
			last = e.Index
		}
		if last == applied {
			return nil
		}
		return meta.Put(keyApplied, strconv.AppendUint(nil, last, 10))
	})
	if err != nil {
		return nil, err
	}
	if today != nil {
		s.today = *today // a begun round: bets are validated as of its day
	}
	return out, nil
}

// applyTx applies one entry inside tx; prev is the index of the last entry
// applied before it.
func (s *Store) applyTx(tx *bolt.Tx, mem *arena, e Entry, prev uint64, today **time.Time) (Applied, error) {
	var a Applied
	var err error
	c := e.Cmd
	switch c.Kind {
	case CmdBegin:
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keyApplied) != nil {
			return a, nil // a round begins once; the cluster's first entry begins it
		}
		at := c.At.UTC()
		if err := meta.Put(keyRoundStarted, []byte(at.Format(time.RFC3339Nano))); err != nil {
			return a, err
		}
		*today = &at
		return a, meta.Put(keyAgencies, strconv.AppendInt(nil, int64(c.Agencies), 10))
	case CmdAppend:
		day := s.today
		if *today != nil {
			day = **today
		}
		a.Receipt, err = appendTxAt(tx, mem, c.Agency, c.First, c.Bets, day)
	case CmdFinish:
		a.Drawn, err = finishTx(tx, c.Agency, c.Total, c.At)
	case CmdDelivered:
		var n uint64
		if n, err = deliverTx(tx, c.Agency, c.At); err == nil && n > 0 {
			// The bucket's sequence counts the deliveries: the one that
			// completes the round's set finishes it.
			agencies, aerr := getUint(tx.Bucket(bucketMeta), bucketMeta, keyAgencies)
			a.Over, err = tx.Bucket(bucketMeta).Get(keyDrawTime) != nil && n >= agencies, aerr
		}
	case CmdNewRound:
		if a.NewRound, err = overTx(tx); err == nil && !a.NewRound {
			err = ErrRoundOpen
		}
	case CmdVersion:
		meta := tx.Bucket(bucketMeta)
		var v uint64
		if v, err = getUint(meta, bucketMeta, keyClusterVersion); err == nil && uint64(c.Version) > v {
			err = meta.Put(keyClusterVersion, strconv.AppendInt(nil, int64(c.Version), 10))
		}
	case CmdCheckpoint:
		if c.Summary == nil {
			return a, fmt.Errorf("%w: a checkpoint without its summary", ErrUnknownCommand)
		}
		a.Checked, err = checkpointTx(tx, prev, e.Index, c.Summary)
	default:
		return a, fmt.Errorf("%w: kind %d", ErrUnknownCommand, c.Kind)
	}
	if err != nil && (refusal(err) || errors.Is(err, ErrIncomplete) || errors.Is(err, ErrRoundOpen)) {
		a.Err, err = err, nil
	}
	return a, err
}

// overTx reports whether tx's round is over: drawn, and every one of its
// agencies delivered. It counts the deliveries one by one (what the same
// transaction wrote included: bbolt's bucket statistics miss it).
func overTx(tx *bolt.Tx) (bool, error) {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyDrawTime) == nil {
		return false, nil
	}
	agencies, err := getUint(meta, bucketMeta, keyAgencies)
	if err != nil {
		return false, err
	}
	var n uint64
	c := tx.Bucket(bucketDelivery).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n >= agencies, nil
}

// deliverTx records that agency has its winners, at at, once; it returns
// how many agencies have theirs (the delivered bucket's sequence), or 0
// when agency had its before.
func deliverTx(tx *bolt.Tx, agency int, at time.Time) (uint64, error) {
	b, key := tx.Bucket(bucketDelivery), agencyKey(agency)
	if b.Get(key) != nil {
		return 0, nil
	}
	if err := b.Put(key, []byte(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return 0, err
	}
	return b.NextSequence()
}

// finishTx records agency's finish with total bets, refusing a total that
// is not its committed count, and runs the draw at at when it completes the
// round's set of agencies. drawn reports that it ran the draw.
func finishTx(tx *bolt.Tx, agency int, total uint64, at time.Time) (drawn bool, err error) {
	key := agencyKey(agency)
	committed, err := getUint(tx.Bucket(bucketAgencies), bucketAgencies, key)
	if err != nil {
		return false, err
	}
	if committed != total {
		return false, fmt.Errorf("%w: agency %d announced %d, %d are committed", ErrIncomplete, agency, total, committed)
	}
	fin := tx.Bucket(bucketFinished)
	if fin.Get(key) == nil {
		if err := fin.Put(key, strconv.AppendUint(nil, total, 10)); err != nil {
			return false, err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyDrawTime) != nil {
		return false, nil
	}
	agencies, err := getUint(meta, bucketMeta, keyAgencies)
	if err != nil || agencies == 0 {
		return false, err
	}
	// One pass over the finished agencies (a search per agency would cost
	// the round a search per pair of agencies).
	finished, last := 0, agencyKey(int(agencies))
	c := fin.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k, last) <= 0; k, _ = c.Next() {
		finished++
	}
	if finished < int(agencies) {
		return false, nil
	}
	return true, drawTx(tx, int(agencies), at)
}

// drawTx scans every stored bet with lottery.HasWon and records each
// agency's winners and the draw's time, inside tx.
func drawTx(tx *bolt.Tx, agencies int, at time.Time) error {
	winners := make(map[int][]string, agencies)
	_, err := winnersTx(tx, func(bet *lottery.Bet) error {
		winners[bet.Agency] = append(winners[bet.Agency], strings.Clone(bet.Document))
		return nil
	})
	if err != nil {
		return err
	}
	return saveDrawTx(tx, at, agencies, winners)
}

// ClusterID returns the cluster this replica's store belongs to ("": none
// recorded, as in a one-node central's store).
func (s *Store) ClusterID() (string, error) {
	var id string
	err := s.view(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(keyCluster))
		return nil
	})
	return id, err
}

// SetClusterID records the cluster this replica's store belongs to.
func (s *Store) SetClusterID(id string) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyCluster, []byte(id)) })
}

// SetReplica makes the store a replica's first state: applied is the log
// index it stands for (0: none) and cluster the cluster it belongs to (""
// forgets both: a one-node central's store). A store restored from a
// backup must not carry the applied index of the cluster it came from: a
// new cluster's log starts at 1, and every entry at or below the index
// would be skipped.
func (s *Store) SetReplica(applied uint64, cluster string) error {
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if applied == 0 && cluster == "" {
			return errors.Join(meta.Delete(keyApplied), meta.Delete(keyCluster))
		}
		return errors.Join(meta.Put(keyApplied, strconv.AppendUint(nil, applied, 10)), meta.Put(keyCluster, []byte(cluster)))
	})
}

var keyOrigin = []byte("backup_of")

// SetOrigin records where a backup came from (its node, role and applied
// index), in the backup's own file.
func (s *Store) SetOrigin(text string) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyOrigin, []byte(text)) })
}

// Origin is what SetOrigin recorded ("": a copy that says nothing of it).
func (s *Store) Origin() (string, error) {
	var o string
	err := s.view(func(tx *bolt.Tx) error {
		o = string(tx.Bucket(bucketMeta).Get(keyOrigin))
		return nil
	})
	return o, err
}

var keyRecord = []byte("round_record")

// SetRecord keeps the drawn round's signed record (package record).
func (s *Store) SetRecord(b []byte) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyRecord, b) })
}

// Record is the round's signed record (nil: none was written).
func (s *Store) Record() ([]byte, error) {
	var b []byte
	err := s.view(func(tx *bolt.Tx) error {
		b = bytes.Clone(tx.Bucket(bucketMeta).Get(keyRecord))
		return nil
	})
	return b, err
}
