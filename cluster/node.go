package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// Errors of a node.
var (
	// ErrNotLeader means this node does not lead the cluster (or has not
	// caught up since it began to): agencies are sent to the leader.
	ErrNotLeader = errors.New("this node does not lead the cluster")
	// ErrUnknownOutcome means a write was handed to raft but its outcome is
	// unknown (leadership lost, no quorum within the bound): the agency
	// reconnects and the new leader's counts settle it by offsets.
	ErrUnknownOutcome = errors.New("the write's outcome is unknown")
	// ErrStopped means the node stopped.
	ErrStopped = errors.New("cluster node stopped")
)

// Node is one replica: a raft member whose FSM is the bets store. It is
// the central's store in a cluster (central.Options.Cluster).
type Node struct {
	cfg    Config
	log    logformat.Logger
	raft   *raft.Raft
	fsm    *fsm
	stream *streamLayer
	logs   *raftboltdb.BoltStore
	trans  *raft.NetworkTransport

	ready      atomic.Bool // leading, caught up (Barrier), the round begun
	leadership func(leading bool)
	mu         sync.Mutex // guards leadership
	fatal      chan error // an entry could not be applied
	failOnce   sync.Once
	stop       chan struct{}
	done       sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Start opens the replica's store and raft state and joins the cluster. A
// node with no raft state bootstraps the cluster from cfg.Nodes (every
// node may: they all propose the same configuration), so nodes may start
// in any order.
func Start(cfg Config) (*Node, error) {
	if _, ok := cfg.Nodes[cfg.ID]; !ok {
		return nil, fmt.Errorf("CLUSTER_NODE_ID %d is not one of CLUSTER_NODES", cfg.ID)
	}
	if cfg.Logger == nil {
		cfg.Logger = logformat.Discard
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := cfg.Timeouts
	if t == (Timeouts{}) {
		t = DefaultTimeouts
	}
	cfg.Timeouts = t
	dir := cfg.DBPath + ".raft"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft state %s: %w", dir, err)
	}
	sopts := store.Options{Now: cfg.Now}
	st, err := store.Open(cfg.DBPath, sopts)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fatal: make(chan error, 1), stop: make(chan struct{})}
	n.fsm = &fsm{path: cfg.DBPath, opts: sopts, st: st, fail: n.failed}
	hlog := newHCLog(cfg.Logger, cfg.ID)
	if n.logs, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")}); err != nil {
		st.Close()
		return nil, fmt.Errorf("raft log %s: %w", dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		n.logs.Close()
		st.Close()
		return nil, err
	}
	self := raft.ServerAddress(cfg.Nodes[cfg.ID])
	n.stream = newStreamLayer(staticAddr(self), cfg.TLS)
	n.stream.dial = cfg.Dial
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 3, Timeout: 5 * time.Second, Logger: hlog, MaxRPCsInFlight: 16})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(strconv.Itoa(cfg.ID))
	rc.Logger = hlog
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, rc.CommitTimeout = t.Heartbeat, t.Election, t.LeaderLease, t.Commit
	// Concurrent writes (many agencies' batches) share one log append and
	// one fsync, as group commit does for one central.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.SnapshotThreshold, rc.TrailingLogs = 4096, 4096
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	has, err := raft.HasExistingState(n.logs, n.logs, snaps)
	if err == nil && !has {
		var servers []raft.Server
		for _, id := range sortedIDs(cfg.Nodes) {
			servers = append(servers, raft.Server{ID: raft.ServerID(strconv.Itoa(id)), Address: raft.ServerAddress(cfg.Nodes[id])})
		}
		err = raft.BootstrapCluster(rc, n.logs, n.logs, snaps, n.trans, raft.Configuration{Servers: servers})
	}
	if err == nil {
		n.raft, err = raft.NewRaft(rc, n.fsm, n.logs, n.logs, snaps, n.trans)
	}
	if err != nil {
		n.trans.Close()
		n.logs.Close()
		st.Close()
		return nil, fmt.Errorf("raft: %w", err)
	}
	n.done.Add(1)
	go n.watch()
	return n, nil
}

func sortedIDs(m map[int]string) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// failed stops the node for good: an entry it cannot apply must not be
// skipped (the replicas would diverge).
func (n *Node) failed(err error) {
	n.failOnce.Do(func() {
		n.log.Criticalf("action: cluster_apply | result: fail | node: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
		n.fatal <- err
	})
}

// Fatal yields the error that stopped the node's FSM (an entry it could not
// apply); the central then stops.
func (n *Node) Fatal() <-chan error { return n.fatal }

// watch logs each change of role and, on becoming leader, catches up
// (Barrier: every entry of earlier terms applied), begins the round if no
// entry began it, and only then tells the central it may serve.
func (n *Node) watch() {
	defer n.done.Done()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.RaftState)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	n.logRole(n.raft.State())
	leading := false
	if n.raft.State() == raft.Leader {
		leading = n.lead()
	}
	for {
		select {
		case <-n.stop:
			if leading {
				n.setLeading(false)
			}
			return
		case o := <-ch:
			st := o.Data.(raft.RaftState)
			n.logRole(st)
			switch {
			case st == raft.Leader && !leading:
				leading = n.lead()
			case st != raft.Leader && leading:
				leading = false
				n.setLeading(false)
			}
		}
	}
}

func (n *Node) logRole(st raft.RaftState) {
	role := map[raft.RaftState]string{raft.Leader: "leader", raft.Follower: "follower", raft.Candidate: "candidate", raft.Shutdown: "shutdown"}[st]
	if role == "" {
		role = st.String()
	}
	n.log.Infof("action: cluster_role | result: success | node: %d | role: %s | term: %d", n.cfg.ID, role, n.raft.CurrentTerm())
}

// lead readies a new leader; it reports whether it serves.
func (n *Node) lead() bool {
	if err := wait(n.raft.Barrier(n.cfg.Timeouts.Apply), n.cfg.Timeouts.Apply); err != nil {
		n.log.Warningf("action: cluster_lead | result: fail | node: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
		return false
	}
	if applied, err := n.fsm.store().AppliedIndex(); err != nil {
		n.failed(err)
		return false
	} else if applied == 0 {
		if _, err := n.apply(store.Command{Kind: store.CmdBegin, Agencies: n.cfg.Agencies, At: n.cfg.Now()}, true); err != nil {
			n.log.Warningf("action: cluster_lead | result: fail | node: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
			return false
		}
	}
	n.setLeading(true)
	return true
}

func (n *Node) setLeading(on bool) {
	n.ready.Store(on)
	n.mu.Lock()
	f := n.leadership
	n.mu.Unlock()
	if f != nil {
		f(on)
	}
}

// OnLeadership registers f, called with true once this node leads and has
// caught up, and with false when it stops leading.
func (n *Node) OnLeadership(f func(leading bool)) {
	n.mu.Lock()
	n.leadership = f
	n.mu.Unlock()
	if n.ready.Load() {
		f(true)
	}
}

// Leader reports whether this node serves agencies and, when it does not,
// the address of the node that leads ("" when unknown).
func (n *Node) Leader() (serving bool, leader string) {
	if n.ready.Load() && n.raft.State() == raft.Leader {
		return true, n.cfg.Nodes[n.cfg.ID]
	}
	addr, _ := n.raft.LeaderWithID()
	return false, string(addr)
}

// Handoff gives raft a replica's connection (its Marker already read).
func (n *Node) Handoff(conn net.Conn) bool { return n.stream.handoff(conn) }

// wait bounds a raft future's wait: hashicorp/raft#498, a future may never
// be answered.
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

// apply writes c through the log and returns its outcome once a quorum has
// it and this node applied it. leading says the caller is the leader's own
// setup (before it serves).
func (n *Node) apply(c store.Command, leading bool) (store.Applied, error) {
	if !leading && !n.ready.Load() {
		return store.Applied{}, ErrNotLeader
	}
	data, err := encode(c)
	if err != nil {
		return store.Applied{}, err
	}
	start := time.Now()
	f := n.raft.Apply(data, n.cfg.Timeouts.Apply)
	if err := wait(f, n.cfg.Timeouts.Apply); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) ||
			errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			err = fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
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
		if err := wait(n.raft.VerifyLeader(), n.cfg.Timeouts.Apply); err != nil {
			return store.Applied{}, fmt.Errorf("%w: leadership not confirmed after a slow write: %w", ErrUnknownOutcome, err)
		}
	}
	if r.err != nil {
		return store.Applied{}, r.err
	}
	return r.Applied, nil
}

// Close leaves the cluster's work to the others: raft shuts down (bounded),
// then the stores close.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.done.Wait()
		err := wait(n.raft.Shutdown(), 10*time.Second)
		n.stream.Close()
		n.trans.Close()
		n.closeErr = errors.Join(err, n.logs.Close(), n.fsm.store().Close())
	})
	return n.closeErr
}
