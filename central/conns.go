package central

import (
	"net"
	"sync"
	"time"

	"github.com/loteria-nacional/tp0/protocol"
)

// shutdownGrace bounds how long, once shutdown began, a reply may still take
// to be written (the ack of a commit in progress): a peer that never reads
// cannot hold the central up longer.
const shutdownGrace = time.Second

// conns is the set of open connections, so that shutdown can unblock every
// one of them. Deadlines are armed through it: once closing, reads get no
// fresh deadline and writes no later one than the grace deadline, so no
// session can undo what shutdown did.
//
// A fenced connection (its agency was taken over by a new session) is
// unblocked the same way, alone: its session then tells the agency why, in
// a last frame written within shutdownGrace, and ends.
type conns struct {
	mu      sync.Mutex
	closing bool
	grace   time.Time // when closing: writes must end by then
	open    map[net.Conn]struct{}
	fenced  map[net.Conn]fence // fenced connections: their write deadline and why
}

type fence struct {
	grace time.Time
	code  protocol.Code // what the session tells its agency: replaced, not_leader
}

func newConns() *conns {
	return &conns{open: map[net.Conn]struct{}{}, fenced: map[net.Conn]fence{}}
}

// track adds conn; false when shutdown began (the caller closes conn).
func (cs *conns) track(conn net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return false
	}
	cs.open[conn] = struct{}{}
	return true
}

func (cs *conns) untrack(conn net.Conn) {
	cs.mu.Lock()
	delete(cs.open, conn)
	delete(cs.fenced, conn)
	cs.mu.Unlock()
}

// fence makes conn's pending read return now and its writes end within
// shutdownGrace; its reads get no fresh deadline after (see armRead). Its
// session tells its agency code (replaced, not_leader) and ends.
func (cs *conns) fence(conn net.Conn, code protocol.Code) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.fenceLocked(conn, code)
}

func (cs *conns) fenceLocked(conn net.Conn, code protocol.Code) {
	grace := time.Now().Add(shutdownGrace)
	cs.fenced[conn] = fence{grace: grace, code: code}
	conn.SetReadDeadline(time.Unix(1, 0))
	conn.SetWriteDeadline(grace)
}

// fenceAll fences every connection that keep selects with code.
func (cs *conns) fenceAll(keep func(net.Conn) bool, code protocol.Code) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for conn := range cs.open {
		if keep(conn) {
			cs.fenceLocked(conn, code)
		}
	}
}

// fenceCode is why conn was fenced.
func (cs *conns) fenceCode(conn net.Conn) protocol.Code {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.fenced[conn].code
}

// isFenced reports whether conn was fenced.
func (cs *conns) isFenced(conn net.Conn) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	_, ok := cs.fenced[conn]
	return ok
}

// shutdown marks the set closing and makes every pending read return now and
// every pending write return within shutdownGrace. It returns the
// connections that were open.
func (cs *conns) shutdown() []net.Conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closing = true
	cs.grace = time.Now().Add(shutdownGrace)
	open := make([]net.Conn, 0, len(cs.open))
	for conn := range cs.open {
		conn.SetReadDeadline(time.Unix(1, 0))
		conn.SetWriteDeadline(cs.grace)
		open = append(open, conn)
	}
	return open
}

func (cs *conns) isClosing() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.closing
}

// armRead sets the deadline of conn's next read (d = 0: none), unless
// shutdown began or conn was fenced: then it reports false.
func (cs *conns) armRead(conn net.Conn, d time.Duration) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, fenced := cs.fenced[conn]; cs.closing || fenced {
		return false
	}
	if d > 0 {
		conn.SetReadDeadline(time.Now().Add(d))
	} else {
		conn.SetReadDeadline(time.Time{})
	}
	return true
}

// armWrite sets the deadline of conn's next write to d from now, or to the
// grace deadline when shutdown began and that is sooner.
func (cs *conns) armWrite(conn net.Conn, d time.Duration) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	t := time.Now().Add(d)
	if cs.closing && cs.grace.Before(t) {
		t = cs.grace
	}
	if f, fenced := cs.fenced[conn]; fenced && f.grace.Before(t) {
		t = f.grace
	}
	conn.SetWriteDeadline(t)
}
