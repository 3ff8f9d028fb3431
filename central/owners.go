package central

import (
	"context"
	"errors"
	"net"
	"sync"
)

// owners gives each agency at most one live session. A new session for an
// agency takes over (fencing, as a new producer epoch does in Kafka): the old
// session's connection is closed and the new one waits until the old one has
// ended, so a batch the old one was committing is either counted in the
// Welcome the new one sends, or not stored at all; never both.
//
// An agency that has spoken over TLS (its certificate proved who it is) is
// never taken over by a plaintext session, which proves nothing: not while
// its TLS session lives, nor later in the same run.
type owners struct {
	mu    sync.Mutex
	live  map[int]*owner
	tls   map[int]bool // agencies that have had a TLS session
	fence func(net.Conn)
}

type owner struct {
	conn net.Conn      // fenced to end the session
	done chan struct{} // closed when the session ended
}

// newOwners returns the owners of a central; fence ends a session on its
// connection (conns.fence: the session tells its agency it was replaced).
func newOwners(fence func(net.Conn)) *owners {
	return &owners{live: map[int]*owner{}, tls: map[int]bool{}, fence: fence}
}

// errTLSAgency refuses a plaintext session for an agency known over TLS.
var errTLSAgency = errors.New("this agency has a TLS session in this run: a plaintext session cannot speak for it")

// acquire makes the session on conn agency's owner, ending the previous
// owner's session first. replaced reports whether there was one. release
// must be called when the session ends. It fails with errTLSAgency for a
// plaintext session (overTLS false) of an agency known over TLS, and with
// ctx's error when ctx ends first.
func (o *owners) acquire(ctx context.Context, agency int, conn net.Conn, overTLS bool) (replaced bool, release func(), err error) {
	me := &owner{conn: conn, done: make(chan struct{})}
	for {
		o.mu.Lock()
		if overTLS {
			o.tls[agency] = true
		} else if o.tls[agency] {
			o.mu.Unlock()
			return false, nil, errTLSAgency
		}
		cur := o.live[agency]
		if cur == nil {
			o.live[agency] = me
			o.mu.Unlock()
			break
		}
		o.mu.Unlock()
		replaced = true
		o.fence(cur.conn)
		select {
		case <-cur.done:
		case <-ctx.Done():
			return replaced, nil, ctx.Err()
		}
	}
	return replaced, func() {
		o.mu.Lock()
		if o.live[agency] == me {
			delete(o.live, agency)
		}
		o.mu.Unlock()
		close(me.done)
	}, nil
}

// connected returns the agencies with a live session.
func (o *owners) connected() map[int]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[int]bool, len(o.live))
	for a := range o.live {
		out[a] = true
	}
	return out
}
