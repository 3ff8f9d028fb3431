package central

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// A replica of a cluster serves agencies only while it leads. When its node
// begins to lead and has caught up (every committed entry applied), the
// central takes the round as the log left it (the round's id, its agencies,
// finishes, the draw); only once that is in place does the node serve, so
// no hello is answered with a round or barrier of before. When it stops,
// every agency session is told not_leader, with the new leader's address
// when known, and ends. The draw is not run here: the entry of the last
// finish ran it on every replica; the barrier only releases the waiting
// sessions once that entry is applied.

// hooks are test hooks of the central; nil ones do nothing.
type hooks struct {
	// lead runs when the central begins to take the round as a new leader.
	lead func()
}

// serveCluster follows this node's leadership until ctx ends, and stops the
// central if its replica cannot apply an entry.
func (c *Central) serveCluster(ctx context.Context) {
	c.cluster.OnLeadership(func(lctx context.Context, leading bool) error {
		if leading {
			// The leadership's work (its draw's retries) ends with it: a
			// deposed leader's retry never acts in a later term.
			return c.lead(lctx)
		}
		c.conns.fenceAll(c.isAgencySession, protocol.CodeNotLeader)
		return nil
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

// lead takes the round as the log left it and releases what it allows. The
// round's AGENCIES is the log's: a replica configured with another count
// follows the log, and says so.
func (c *Central) lead(ctx context.Context) error {
	if c.hooks.lead != nil {
		c.hooks.lead()
	}
	r, err := c.store.Round()
	if err != nil {
		c.checkDamage(err)
		return fmt.Errorf("reading the round: %w", err)
	}
	c.installRound(ctx, r)
	return nil
}

// installRound makes r the round sessions see: its id and its barrier.
func (c *Central) installRound(ctx context.Context, r store.Round) {
	agencies := r.AgencyCount(c.opts.Agencies)
	if agencies != c.opts.Agencies {
		c.log.Warningf("action: cluster_lead | result: success | agencias: %d | aviso: %s", agencies, logformat.Value(fmt.Sprintf(
			"AGENCIES is %d in this node's configuration, but the round in the log runs with %d: the log's count is used", c.opts.Agencies, agencies)))
	}
	c.round.Store(uint64(r.Started.UnixNano()))
	// A drawn round's winners are released once this replica's store passed
	// its check (replicatedDraw), as after the draw's own entry.
	b := newBarrier(agencies, r.Finished, nil)
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

// handoff gives a replica's connection (r: conn, its Marker read; certID
// the replica its TLS certificate names, 0 in plaintext) to raft, after the
// replicas' handshake, and waits until raft closes it (or the central shuts
// down), so that the connection is tracked, and closed at shutdown, like
// any other. It holds a replica slot, not an agency's.
func (c *Central) handoff(ctx context.Context, conn net.Conn, r net.Conn, certID int, held *slot) {
	ip := remoteIP(conn)
	if c.cluster == nil {
		held.release()
		c.log.Warningf("action: cluster_peer | result: fail | ip: %s | error: a replica's connection, but this central is not in a cluster (CLUSTER_NODES)", ip)
		return
	}
	s := c.slots.toReplica(held)
	if s == nil {
		c.log.Warningf("action: cluster_peer | result: fail | ip: %s | error: all %d replica connections are taken", ip, replicaConns)
		return
	}
	defer s.release()
	hc := &handedConn{Conn: r, done: make(chan struct{})}
	c.replicaMu.Lock()
	c.replicas[conn] = true
	c.replicaMu.Unlock()
	defer func() {
		c.replicaMu.Lock()
		delete(c.replicas, conn)
		c.replicaMu.Unlock()
	}()
	// The handshake bounds itself; raft then keeps its connections idle
	// between heartbeats.
	c.conns.armRead(conn, 0)
	peer, err := c.cluster.Handoff(hc, certID)
	if errors.Is(err, cluster.ErrProbe) {
		c.log.Debugf("action: cluster_peer | result: success | ip: %s | par: %d | sonda: true", ip, peer)
		return
	}
	if err != nil {
		c.log.Warningf("action: cluster_peer | result: fail | ip: %s | par: %d | error: %s", ip, peer, logformat.Value(err.Error()))
		return
	}
	c.log.Debugf("action: cluster_peer | result: success | ip: %s | par: %d", ip, peer)
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
