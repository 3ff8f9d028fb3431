package cluster

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/store"
)

// answerer waits on raft's futures for callers that wait with a bound.
// hashicorp/raft#498: a future may never be answered (an entry left in the
// apply queue of a node that stepped down or shut down), and a future can
// only be waited on by blocking. One goroutine per node blocks on the
// futures, in the order they were handed to it, which is about the order
// raft answers writes (the log's); each caller waits for its answer or its
// bound, whichever comes first. A future that is never answered holds that
// one goroutine, never one per write.
type answerer struct {
	mu    sync.Mutex
	queue []pending
	wake  chan struct{}
	stop  chan struct{}
}

type pending struct {
	f    raft.Future
	done chan error // buffered: the answer never waits for the caller
}

func newAnswerer() *answerer {
	a := &answerer{wake: make(chan struct{}, 1), stop: make(chan struct{})}
	go a.run()
	return a
}

func (a *answerer) run() {
	for {
		a.mu.Lock()
		batch := a.queue
		a.queue = nil
		a.mu.Unlock()
		for _, p := range batch {
			p.done <- p.f.Error()
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-a.wake:
		case <-a.stop:
			return
		}
	}
}

// waitAlone waits for f in a goroutine of its own, not the answerer's: for
// a future that must not queue behind others. It returns f's error, or
// ErrUnknownOutcome once d has passed.
func waitAlone(f raft.Future, d time.Duration) error {
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

// close stops the answerer once its queue is empty.
func (a *answerer) close() { close(a.stop) }

// wait returns f's error, or ErrUnknownOutcome once d has passed.
func (a *answerer) wait(f raft.Future, d time.Duration) error {
	p := pending{f: f, done: make(chan error, 1)}
	a.mu.Lock()
	a.queue = append(a.queue, p)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-p.done:
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
	start := time.Now()
	f := n.raft.Apply(data, n.cfg.Timeouts.Apply)
	return func() (store.Applied, error) { return n.outcome(f, start) }
}

// outcome waits for an Apply's future and returns the entry's outcome.
func (n *Node) outcome(f raft.ApplyFuture, start time.Time) (store.Applied, error) {
	if err := n.answers.wait(f, n.cfg.Timeouts.Apply); err != nil {
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
	// A write that took longer than the leader's lease may come from a
	// leader that was paused (SIGSTOP, a stalled VM) while the others
	// elected a new one: the entry is committed, but this node may no longer
	// lead, and must not ack for the cluster. It asks a quorum first; a
	// deposed leader learns of the new term and the agency hears the
	// outcome from the new leader's counts instead.
	if time.Since(start) > n.cfg.Timeouts.LeaderLease {
		if err := n.answers.wait(n.raft.VerifyLeader(), n.cfg.Timeouts.Apply); err != nil {
			return store.Applied{}, fmt.Errorf("%w: leadership not confirmed after a slow write: %w", ErrUnknownOutcome, err)
		}
	}
	n.signals.commit.observe(time.Since(start))
	if r.err != nil {
		return store.Applied{}, r.err
	}
	return r.Applied, nil
}
