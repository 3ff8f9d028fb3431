package cluster

import (
	"strconv"

	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// signals are raft's measures that operators watch, kept by the node and
// read by the central's /metrics (Signals).
type signals struct {
	commit    histogram // a write: Apply until committed and applied here
	fsmApply  histogram // one batch of entries applied to the store
	snapshots atomic.Uint64
	snapNanos atomic.Int64 // the last snapshot's persist time
	snapBytes atomic.Int64 // and size
	restores  atomic.Uint64
}

// histogramBounds are the upper bounds of the latency buckets, in seconds.
var histogramBounds = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}

// histogram counts durations in histogramBounds' buckets.
type histogram struct {
	mu     sync.Mutex
	counts [15]uint64 // one per bound, and +Inf
	sum    float64
	n      uint64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	i := 0
	for i < len(histogramBounds) && s > histogramBounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += s
	h.n++
}

// Histogram is a histogram's state: cumulative counts per upper bound, as
// Prometheus exposes them.
type Histogram struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

func (h *histogram) snapshot() Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Histogram{Count: h.n, Sum: h.sum, Buckets: make(map[float64]uint64, len(histogramBounds))}
	var cum uint64
	for i, b := range histogramBounds {
		cum += h.counts[i]
		out.Buckets[b] = cum
	}
	return out
}

// Signals are the node's raft signals for /metrics.
type Signals struct {
	// LastContact is how long ago this follower last heard from a leader
	// (0 on the leader; -1: never).
	LastContact time.Duration
	// Commit: writes from Apply to committed and applied here (the leader's).
	Commit Histogram
	// FSMApply: batches of entries applied to the store.
	FSMApply Histogram
	// FSMPending is how many committed batches wait to be applied.
	FSMPending uint64
	// Snapshots taken; the last one's persist time and size.
	Snapshots    uint64
	SnapshotTime time.Duration
	SnapshotSize int64
	// Restores of a snapshot into the store (a rebuild, or one installed
	// from the leader).
	Restores uint64
	// Trusted says the store was trusted at start (a clean stop), rather
	// than rebuilt from a snapshot and the log.
	Trusted bool
}

// Signals returns the node's signals.
func (n *Node) Signals() Signals {
	s := Signals{Commit: n.signals.commit.snapshot(), FSMApply: n.signals.fsmApply.snapshot(),
		Snapshots: n.signals.snapshots.Load(), SnapshotTime: time.Duration(n.signals.snapNanos.Load()),
		SnapshotSize: n.signals.snapBytes.Load(), Restores: n.signals.restores.Load(), Trusted: n.trusted}
	stats := n.raft.Stats()
	s.FSMPending, _ = strconv.ParseUint(stats["fsm_pending"], 10, 64)
	switch last := n.raft.LastContact(); {
	case n.raft.State() == raft.Leader:
	case last.IsZero():
		s.LastContact = -1
	default:
		s.LastContact = time.Since(last)
	}
	return s
}
