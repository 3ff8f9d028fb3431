package central

import "sync"

// Connection slots. Every connection holds a slot while it is served, so
// that the central never runs out of descriptors: agencies' sessions (and
// echo checks) hold one of MaxConns agency slots. On a replica, replica
// traffic has slots of its own, so that neither kind can crowd out the
// other: a connection over the agencies' limit still gets one of a few
// spare slots, only long enough to say what it is (its first byte, its
// certificate); a replica's connection then moves to a replica slot and
// gives back what it held, and an agency's on a spare slot is refused as
// any connection over the limit is.
const (
	// replicaConns bounds replica connections (raft pools 3 per peer
	// outbound; a peer's pipeline, heartbeats and snapshot transfer come
	// on top).
	replicaConns = 64
	// spareConns are the connections over the agencies' limit that may say
	// what they are.
	spareConns = 16
)

// slots are the central's connection slots.
type slots struct {
	agency, spare, replica chan struct{}
}

func newSlots(maxConns int, replica bool) *slots {
	s := &slots{agency: make(chan struct{}, maxConns)}
	if replica {
		s.spare, s.replica = make(chan struct{}, spareConns), make(chan struct{}, replicaConns)
	}
	return s
}

// slot is the slot one connection holds; release gives it back (once).
type slot struct {
	pool chan struct{}
	once sync.Once
}

func (s *slot) release() { s.once.Do(func() { <-s.pool }) }

// spare reports whether the connection holds a spare slot: it is over the
// agencies' limit.
func (s *slot) spare(ss *slots) bool { return s.pool == ss.spare }

func tryTake(pool chan struct{}) *slot {
	if pool == nil {
		return nil
	}
	select {
	case pool <- struct{}{}:
		return &slot{pool: pool}
	default:
		return nil
	}
}

// take returns an agency slot, else a spare one, else nil (refuse).
func (ss *slots) take() *slot {
	if s := tryTake(ss.agency); s != nil {
		return s
	}
	return tryTake(ss.spare)
}

// toReplica moves a replica's connection from held to a replica slot; it
// returns nil (held is released either way) when they are all taken.
func (ss *slots) toReplica(held *slot) *slot {
	s := tryTake(ss.replica)
	held.release()
	return s
}
