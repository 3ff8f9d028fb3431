package central

import (
	"context"
	"net"
	"sync"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
)

// A replica of a cluster serves agencies only while it leads. When it
// begins to lead (caught up: every committed entry applied), it takes the
// round as the log left it (the round's id, finishes, the draw) and starts
// serving; when it stops, every agency session is told not_leader, with the
// new leader's address when known, and ends. The draw is not run here: the
// entry of the last finish ran it on every replica; the barrier only
// releases the waiting sessions once that entry is applied.

// serveCluster follows this node's leadership until ctx ends, and stops the
// central if its replica cannot apply an entry.
func (c *Central) serveCluster(ctx context.Context) {
	c.cluster.OnLeadership(func(leading bool) {
		if leading {
			c.lead(ctx)
			return
		}
		c.conns.fenceAll(c.isAgencySession, protocol.CodeNotLeader)
	})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case err := <-c.cluster.Fatal():
			c.abort(err)
		case <-ctx.Done():
		}
	}()
}

// lead takes the round as the log left it and releases what it allows.
func (c *Central) lead(ctx context.Context) {
	r, err := c.store.Round()
	if err != nil {
		c.log.Errorf("action: cluster_lead | result: fail | error: %s", logformat.Value(err.Error()))
		return
	}
	c.round.Store(uint64(r.Started.UnixNano()))
	var winners map[int][]string
	if r.Drawn {
		winners = r.Winners
	}
	b := newBarrier(r.AgencyCount(c.opts.Agencies), r.Finished, winners)
	c.bar.Store(b)
	if b.resume() {
		c.startDraw(ctx)
	}
}

// isAgencySession reports whether conn carries an agency session (not a
// replica's traffic, which raft keeps).
func (c *Central) isAgencySession(conn net.Conn) bool {
	c.replicaMu.Lock()
	defer c.replicaMu.Unlock()
	return !c.replicas[conn]
}

// handoff gives a replica's connection to raft and waits until raft closes
// it (or the central shuts down), so that the connection is tracked, and
// closed at shutdown, like any other.
func (c *Central) handoff(ctx context.Context, conn net.Conn, r net.Conn) {
	if c.cluster == nil {
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: a replica's connection, but this central is not in a cluster (CLUSTER_NODES)", remoteIP(conn))
		return
	}
	hc := &handedConn{Conn: r, done: make(chan struct{})}
	c.replicaMu.Lock()
	c.replicas[conn] = true
	c.replicaMu.Unlock()
	defer func() {
		c.replicaMu.Lock()
		delete(c.replicas, conn)
		c.replicaMu.Unlock()
	}()
	c.conns.armRead(conn, 0) // raft keeps its connections idle between heartbeats
	if !c.cluster.Handoff(hc) {
		return
	}
	select {
	case <-hc.done:
	case <-ctx.Done():
	}
}

// handedConn tells the central when raft closes a connection.
type handedConn struct {
	net.Conn
	done chan struct{}
	once sync.Once
}

func (h *handedConn) Close() error {
	err := h.Conn.Close()
	h.once.Do(func() { close(h.done) })
	return err
}
