// Package cluster replicates the central's store over three (or any odd
// number of) machines with hashicorp/raft: the leader serves agencies and
// every write is a log entry that each replica applies to its own bbolt
// store (store.Apply) in the same order, so every replica holds the same
// bets, counts, finishes, draw and winners. No consensus is written here:
// raft elects, replicates and commits; this package encodes the entries,
// applies them, snapshots the store, carries raft's traffic on the
// central's own port and tells the central who leads.
package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// An entry is a version byte, the command's kind, then its fields,
// big-endian:
//
//	Begin       at i64 (ns) | agencies u32
//	Append      a protocol Batch frame (agency, first, bets)
//	Finish      agency u32 | total u64 | at i64
//	Delivered   agency u32 | at i64
//	NewRound    at i64 (ns) | agencies u32
//	Version     version u32                                 (entry format 2)
//	Checkpoint  at u64 | bets u64 | draw i64 (ns, 0: none) | n u32 |
//	            n × (agency u32 | committed u64 | digest [32] | finished u64 | winners [8])   (entry format 2)
//
// The kinds of entry format 2 are proposed only once the cluster's version
// (set by a Version entry) is 2: every member reads them. A node that meets
// a kind it does not know stops (a failed apply) rather than guess.
const entryVersion = 1

// maxCheckpointAgencies bounds a checkpoint's agencies (AGENCIES' own bound).
const maxCheckpointAgencies = 1 << 20

// agencySummarySize is the size of one agency in a checkpoint.
const agencySummarySize = 4 + 8 + lottery.DigestSize + 8 + 8

// ErrEntry means an entry this version cannot decode: the replica stops
// rather than diverge.
var ErrEntry = errors.New("cannot decode a log entry")

// encode returns c as a log entry.
func encode(c store.Command) ([]byte, error) {
	b := []byte{entryVersion, byte(c.Kind)}
	be := binary.BigEndian
	switch c.Kind {
	case store.CmdBegin, store.CmdNewRound:
		b = be.AppendUint64(b, uint64(c.At.UnixNano()))
		b = be.AppendUint32(b, uint32(c.Agencies))
	case store.CmdAppend:
		return protocol.AppendBatch(b, c.Agency, c.First, c.Bets)
	case store.CmdFinish:
		b = be.AppendUint32(b, uint32(c.Agency))
		b = be.AppendUint64(b, c.Total)
		b = be.AppendUint64(b, uint64(c.At.UnixNano()))
	case store.CmdDelivered:
		b = be.AppendUint32(b, uint32(c.Agency))
		b = be.AppendUint64(b, uint64(c.At.UnixNano()))
	case store.CmdVersion:
		b = be.AppendUint32(b, uint32(c.Version))
	case store.CmdCheckpoint:
		sum := c.Summary
		b = be.AppendUint64(b, sum.At)
		b = be.AppendUint64(b, sum.Bets)
		var draw int64
		if !sum.DrawTime.IsZero() {
			draw = sum.DrawTime.UnixNano()
		}
		b = be.AppendUint64(b, uint64(draw))
		ids := make([]int, 0, len(sum.Agencies))
		for id := range sum.Agencies {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		b = be.AppendUint32(b, uint32(len(ids)))
		for _, id := range ids {
			a := sum.Agencies[id]
			b = be.AppendUint32(b, uint32(id))
			b = be.AppendUint64(b, a.Committed)
			b = append(b, a.Digest[:]...)
			b = be.AppendUint64(b, a.Finished)
			b = append(b, a.Winners[:]...)
		}
	default:
		return nil, fmt.Errorf("%w: kind %d", store.ErrUnknownCommand, c.Kind)
	}
	return b, nil
}

// decode reads an entry written by encode.
func decode(data []byte) (store.Command, error) {
	if len(data) < 2 || data[0] != entryVersion {
		return store.Command{}, fmt.Errorf("%w: version %v", ErrEntry, data[:min(len(data), 1)])
	}
	c := store.Command{Kind: store.CommandKind(data[1])}
	body := data[2:]
	be := binary.BigEndian
	need := func(n int) error {
		if len(body) != n {
			return fmt.Errorf("%w: kind %d with %d bytes, want %d", ErrEntry, c.Kind, len(body), n)
		}
		return nil
	}
	at := func(b []byte) time.Time { return time.Unix(0, int64(be.Uint64(b))).UTC() }
	switch c.Kind {
	case store.CmdBegin, store.CmdNewRound:
		if err := need(12); err != nil {
			return c, err
		}
		c.At, c.Agencies = at(body), int(be.Uint32(body[8:]))
	case store.CmdAppend:
		// The bets are read from data, not copied: the command lives no
		// longer than the entry's apply.
		f, err := protocol.ParseFrame(body)
		if err != nil {
			return c, fmt.Errorf("%w: %w", ErrEntry, err)
		}
		c.Agency, c.First, c.Bets = f.Agency, f.First, f
	case store.CmdFinish:
		if err := need(20); err != nil {
			return c, err
		}
		c.Agency, c.Total, c.At = int(be.Uint32(body)), be.Uint64(body[4:]), at(body[12:])
	case store.CmdDelivered:
		if err := need(12); err != nil {
			return c, err
		}
		c.Agency, c.At = int(be.Uint32(body)), at(body[4:])
	case store.CmdVersion:
		if err := need(4); err != nil {
			return c, err
		}
		c.Version = int(be.Uint32(body))
	case store.CmdCheckpoint:
		if len(body) < 28 {
			return c, fmt.Errorf("%w: a checkpoint of %d bytes", ErrEntry, len(body))
		}
		sum := &store.Summary{At: be.Uint64(body), Bets: be.Uint64(body[8:]), Agencies: map[int]store.AgencySummary{}}
		if draw := int64(be.Uint64(body[16:])); draw != 0 {
			sum.DrawTime = time.Unix(0, draw).UTC()
		}
		n := int(be.Uint32(body[24:]))
		if n > maxCheckpointAgencies {
			return c, fmt.Errorf("%w: a checkpoint of %d agencies", ErrEntry, n)
		}
		if err := need(28 + n*agencySummarySize); err != nil {
			return c, err
		}
		for p := body[28:]; len(p) > 0; p = p[agencySummarySize:] {
			var a store.AgencySummary
			a.Committed = be.Uint64(p[4:])
			copy(a.Digest[:], p[12:])
			a.Finished = be.Uint64(p[12+lottery.DigestSize:])
			copy(a.Winners[:], p[20+lottery.DigestSize:])
			sum.Agencies[int(be.Uint32(p))] = a
		}
		c.Summary = sum
	default:
		return c, fmt.Errorf("%w: kind %d, which this version (entry format %d) does not know: an entry of a newer version; run that version on this node (docs/cluster.md, upgrades)", ErrEntry, c.Kind, EntryFormat)
	}
	return c, nil
}
