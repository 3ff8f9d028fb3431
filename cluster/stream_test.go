package cluster

import (
	"errors"

	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// streamPair is node 1's stream layer, dialling node 2 at a port that is
// reserved and closed (nothing listens until listen).
type streamPair struct {
	t        *testing.T
	one, two *streamLayer
	addr     string // node 2's
	attempts atomic.Int32
	// onRefused runs after each refused connection attempt (its count).
	onRefused func(n int32)
}

func newStreamPair(t *testing.T, twoKnowsOne bool) *streamPair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &streamPair{t: t, addr: ln.Addr().String()}
	ln.Close()
	id := NewID()
	me := func() info { return info{version: EntryFormat, state: stateMember} }
	nodes := map[int]string{1: "127.0.0.1:1", 2: p.addr}
	p.one = newStreamLayer(1, staticAddr(nodes[1]), nil, true, newMembers(nodes), &identity{id: id}, me, newPeers(), nil)
	if !twoKnowsOne {
		nodes = map[int]string{2: p.addr, 3: "127.0.0.1:3"}
	}
	p.two = newStreamLayer(2, staticAddr(p.addr), nil, true, newMembers(nodes), &identity{id: id}, me, newPeers(), nil)
	p.one.dialTCP = func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if n := p.attempts.Add(1); err != nil && p.onRefused != nil {
			p.onRefused(n)
		}
		return c, err
	}
	t.Cleanup(func() { p.one.Close(); p.two.Close(); p.one.stopDialing() })
	return p
}

// listen serves node 2's port as a central does: the Marker, then the
// handshake, and raft's side takes the connection.
func (p *streamPair) listen() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Error(err)
		return
	}
	p.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != Marker {
					c.Close()
					return
				}
				if _, err := p.two.handoff(c, 0); err != nil {
					c.Close()
				}
			}()
		}
	}()
	go func() {
		for {
			c, err := p.two.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// A leader's Dial to a follower that is down waits for it (bounded by the
// timeout) instead of failing at once: raft backs off after each failure,
// up to 10 s, and would sleep through the follower's return.
func TestDial_WaitsForAPeerThatComesBack(t *testing.T) {
	p := newStreamPair(t, true)
	p.onRefused = func(n int32) {
		if n == 3 {
			p.listen()
		}
	}
	c, err := p.one.Dial(raft.ServerAddress(p.addr), time.Minute)
	if err != nil {
		t.Fatalf("after %d attempts: %v", p.attempts.Load(), err)
	}
	c.Close()
	if n := p.attempts.Load(); n != 4 {
		t.Fatalf("connected on attempt %d, want 4 (three refused, then the listener)", n)
	}
}

// The wait ends when the node stops (raft's shutdown waits for the
// goroutines that dial), and a peer that answers and refuses is not
// dialled again.
func TestDial_StopsAndRefusals(t *testing.T) {
	t.Run("Stop", func(t *testing.T) {
		p := newStreamPair(t, true)
		p.onRefused = func(n int32) {
			if n == 2 {
				p.one.stopDialing()
			}
		}
		_, err := p.one.Dial(raft.ServerAddress(p.addr), time.Hour)
		if !unreachable(err) {
			t.Fatalf("err = %v, want the refused dial", err)
		}
		if n := p.attempts.Load(); n != 2 {
			t.Fatalf("%d attempts, want 2: the stop ends the wait", n)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		p := newStreamPair(t, false) // node 2 does not know node 1
		p.listen()
		_, err := p.one.Dial(raft.ServerAddress(p.addr), time.Minute)
		if !errors.Is(err, ErrPeerRefused) {
			t.Fatalf("err = %v, want ErrPeerRefused", err)
		}
		if n := p.attempts.Load(); n != 1 {
			t.Fatalf("%d attempts, want 1: a refusal is an answer", n)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		p := newStreamPair(t, true)
		_, err := p.one.Dial(raft.ServerAddress(p.addr), 3*dialRetry)
		if !unreachable(err) {
			t.Fatalf("err = %v, want the refused dial", err)
		}
		if n := p.attempts.Load(); n < 1 || n > 3 {
			t.Fatalf("%d attempts in 3 retries' time", n)
		}
	})
}
