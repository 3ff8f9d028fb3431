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
	"time"

	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// An entry is a version byte, the command's kind, then its fields,
// big-endian:
//
//	Begin      at i64 (ns) | agencies u32
//	Append     a protocol Batch frame (agency, first, bets)
//	Finish     agency u32 | total u64 | at i64
//	Delivered  agency u32 | at i64
//	NewRound   at i64 (ns) | agencies u32
const entryVersion = 1

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
	default:
		return c, fmt.Errorf("%w: kind %d", ErrEntry, c.Kind)
	}
	return c, nil
}
