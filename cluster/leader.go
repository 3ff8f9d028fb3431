package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// Leadership. Raft tells each change through Config.NotifyCh (every one:
// raft waits until it is taken). On becoming leader the node prepares in a
// goroutine of its own: it catches up (Barrier: every entry of earlier
// terms applied), begins the round if no entry began it, and lets the
// central take the round as the log left it; only then does it serve. A
// preparation that fails is retried while the node leads and, after
// leadAttempts failures, leadership is handed to another voter, so that
// some node serves within a bounded time. Losing leadership cancels the
// preparation or ends the serving, and the central is told.

// leadAttempts failed preparations make a leader hand its leadership over.
const leadAttempts = 2

// Preparation retries back off from leadRetryMin, doubling up to leadRetryMax.
const (
	leadRetryMin = 100 * time.Millisecond
	leadRetryMax = 2 * time.Second
)

// watch follows raft's leadership notifications until the node stops.
func (n *Node) watch(notify <-chan bool) {
	defer n.done.Done()
	var cancel context.CancelFunc
	var led chan struct{}
	stepDown := func() {
		if cancel != nil {
			cancel()
			<-led
			cancel = nil
		}
	}
	defer stepDown()
	for {
		select {
		case <-n.stop:
			return
		case leading := <-notify:
			stepDown() // true after true: leadership was lost and regained
			if leading {
				ctx, c := context.WithCancel(context.Background())
				cancel, led = c, make(chan struct{})
				go func() {
					defer close(led)
					n.lead(ctx)
				}()
			}
		}
	}
}

// lead prepares this new leader, serves until ctx ends (leadership lost, or
// the node stops), then tells the central.
func (n *Node) lead(ctx context.Context) {
	wait := leadRetryMin
	for attempt := 1; ; attempt++ {
		err := n.prepare(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		n.log.Warningf("action: cluster_lead | result: fail | nodo: %d | intento: %d | error: %s", n.cfg.ID, attempt, logformat.Value(err.Error()))
		if attempt >= leadAttempts && n.otherVoters() {
			if err := n.waitCtx(ctx, n.raft.LeadershipTransfer()); err == nil {
				n.log.Warningf("action: cluster_lead | result: in_progress | nodo: %d | traspaso: true | aviso: leadership handed to another voter after %d failed preparations", n.cfg.ID, attempt)
				<-ctx.Done()
				return
			} else if ctx.Err() == nil {
				n.log.Warningf("action: cluster_lead | result: fail | nodo: %d | traspaso: false | error: %s", n.cfg.ID, logformat.Value(err.Error()))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(wait*2, leadRetryMax)
	}
	n.serving.Store(true)
	n.log.Infof("action: cluster_lead | result: success | nodo: %d | termino: %d", n.cfg.ID, n.raft.CurrentTerm())
	<-ctx.Done()
	n.serving.Store(false)
	n.tell(context.Background(), false)
}

// prepare readies a new leader: caught up, the round begun, the central
// serving it.
func (n *Node) prepare(ctx context.Context) error {
	if h := n.cfg.Hooks; h != nil && h.Barrier != nil {
		if err := h.Barrier(); err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
	}
	if err := n.waitCtx(ctx, n.raft.Barrier(n.cfg.Timeouts.Apply)); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	if err := n.fsm.latched(); err != nil {
		return err
	}
	applied, err := n.fsm.store().AppliedIndex()
	if err != nil {
		return err
	}
	if applied == 0 {
		c := store.Command{Kind: store.CmdBegin, Agencies: n.cfg.Agencies, At: n.cfg.Now()}
		if _, err := n.apply(c, true); err != nil {
			return fmt.Errorf("beginning the round: %w", err)
		}
	}
	select {
	case <-n.registered:
	case <-ctx.Done():
		return ctx.Err()
	}
	return n.tell(ctx, true)
}

// waitCtx waits for f within Timeouts.Apply, or until ctx ends.
func (n *Node) waitCtx(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- wait(f, n.cfg.Timeouts.Apply) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// otherVoters reports whether the configuration has a voter beside this node.
func (n *Node) otherVoters() bool {
	servers, err := n.configuration()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.Suffrage == raft.Voter && s.ID != serverID(n.cfg.ID) {
			return true
		}
	}
	return false
}

func (n *Node) tell(ctx context.Context, leading bool) error {
	n.mu.Lock()
	f := n.leadership
	n.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(ctx, leading)
}

// OnLeadership registers f, called with true when this node leads and has
// caught up (it serves once f returns nil; an error is a failed
// preparation), and with false when it stops leading. ctx ends when the
// leadership does. A leader serves only once f is registered.
func (n *Node) OnLeadership(f func(ctx context.Context, leading bool) error) {
	n.mu.Lock()
	n.leadership = f
	n.mu.Unlock()
	select {
	case <-n.registered:
	default:
		close(n.registered)
	}
}

// Leader reports whether this node serves agencies and, when it does not,
// the address of the node that leads ("" when unknown).
func (n *Node) Leader() (serving bool, leader string) {
	if n.serving.Load() && n.raft.State() == raft.Leader {
		return true, n.cfg.Nodes[n.cfg.ID]
	}
	addr, _ := n.raft.LeaderWithID()
	return false, string(addr)
}
