package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/store"
)

// wait waits for raft's future f, at most d: its error, or
// ErrUnknownOutcome once d has passed. Each wait is bounded on its own: a
// future raft never answers (an entry left in the apply queue of a node
// that stepped down or shut down, hashicorp/raft#498) holds one goroutine,
// which ends with the process, and no other wait waits behind it.
func wait(f raft.Future, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: no answer from raft within %s", ErrUnknownOutcome, d)
	}
}

// result is what raft hands back to the Apply call of an entry.
type result struct {
	store.Applied
	err error // the entry was not applied (the node failed, or is stopping)
}

// lostLeadership are raft's errors that leave a write's outcome unknown.
var lostLeadership = []error{raft.ErrNotLeader, raft.ErrLeadershipLost, raft.ErrEnqueueTimeout, raft.ErrRaftShutdown,
	raft.ErrLeadershipTransferInProgress, raft.ErrAbortedByRestore}

// apply writes c through the log and returns its outcome once a quorum has
// it and this node applied it. leading says the caller is the leader's own
// setup (before it serves).
func (n *Node) apply(c store.Command, leading bool) (store.Applied, error) {
	return n.submit(c, leading)()
}

// submit hands c to raft (the entry is queued in the order of the calls:
// one caller's entries are appended in its order) and returns the wait for
// its outcome.
func (n *Node) submit(c store.Command, leading bool) func() (store.Applied, error) {
	if !leading && !n.serving.Load() {
		return func() (store.Applied, error) { return store.Applied{}, ErrNotLeader }
	}
	data, err := encode(c)
	if err != nil {
		return func() (store.Applied, error) { return store.Applied{}, err }
	}
	forget := func() {}
	if c.Kind == store.CmdAppend {
		forget = n.fsm.propose(data, c.Bets)
	}
	n.proposing.RLock()
	start := time.Now()
	f := n.raft.Apply(data, n.cfg.Timeouts.Apply)
	n.proposing.RUnlock()
	return func() (store.Applied, error) {
		defer forget()
		return n.outcome(f, start)
	}
}

// outcome waits for an Apply's future and returns the entry's outcome. A
// future that succeeded is an entry committed by a quorum and applied here:
// durable whoever leads later, so it is answered as it is, however long it
// took (a leader paused meanwhile acks what its quorum had committed).
func (n *Node) outcome(f raft.ApplyFuture, start time.Time) (store.Applied, error) {
	if err := wait(f, n.cfg.Timeouts.Apply); err != nil {
		for _, lost := range lostLeadership {
			if errors.Is(err, lost) {
				return store.Applied{}, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
		}
		return store.Applied{}, err
	}
	r, ok := f.Response().(result)
	if !ok {
		return store.Applied{}, fmt.Errorf("%w: raft answered %T", ErrUnknownOutcome, f.Response())
	}
	n.signals.commit.observe(time.Since(start))
	if r.err != nil {
		return store.Applied{}, r.err
	}
	return r.Applied, nil
}
