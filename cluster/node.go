package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

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
	// ErrOtherCluster means this node's files belong to another cluster
	// than the one its raft folder does.
	ErrOtherCluster = errors.New("the node's files belong to different clusters")
)

// Node is one replica: a raft member whose FSM is the bets store. It is
// the central's store in a cluster (central.Options.Cluster).
type Node struct {
	cfg     Config
	log     logformat.Logger
	dir     string
	raft    *raft.Raft
	fsm     *fsm
	stream  *streamLayer
	trans   *transport
	logs    raftStore
	members *members
	ident   *identity
	answers *answerer
	signals signals
	trusted bool // the store was trusted at start (a clean stop)

	started    chan struct{} // closed once raft runs (n.raft is set)
	serving    atomic.Bool   // leads, caught up, and the central took the round
	mu         sync.Mutex    // guards leadership
	leadership func(ctx context.Context, leading bool) error
	registered chan struct{} // closed when leadership is set
	fatal      chan error    // an entry could not be applied
	snapshot   chan struct{} // the round is over: snapshot now
	stop       chan struct{}
	done       sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Start opens the replica's store and raft state and joins the cluster. A
// node with no raft state bootstraps the cluster from cfg.Nodes (every
// node may: they all propose the same configuration, so nodes may start in
// any order), or, with cfg.Join, waits for the leader to add it.
func Start(cfg Config) (*Node, error) {
	if _, ok := cfg.Nodes[cfg.ID]; !ok {
		return nil, fmt.Errorf("node %d is not one of CLUSTER_NODES (%s)", cfg.ID, FormatNodes(cfg.Nodes))
	}
	if cfg.Logger == nil {
		cfg.Logger = logformat.Discard
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LogStore == "" {
		cfg.LogStore = DefaultLogStore
	}
	cfg.Timeouts = cfg.Timeouts.withDefaults()
	if err := cfg.Timeouts.validate(); err != nil {
		return nil, err
	}
	cfg.Snapshots = cfg.Snapshots.withDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger, dir: cfg.DBPath + ".raft", started: make(chan struct{}), registered: make(chan struct{}),
		fatal: make(chan error, 1), snapshot: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft state %s: %w", n.dir, err)
	}
	ok := false
	var cleanup []func() error
	defer func() {
		if !ok {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	hlog := newRaftLog(cfg.Logger, cfg.ID, n.roleChanged)
	var err error
	if n.logs, err = openLogStore(n.dir, cfg.LogStore, cfg.WALSegmentSize, hlog); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, n.logs.Close)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.dir, 2, hlog)
	if err != nil {
		return nil, err
	}
	has, err := raft.HasExistingState(n.logs, n.logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("raft state %s: %w", n.dir, err)
	}
	id, err := n.clusterID(has)
	if err != nil {
		return nil, err
	}
	st, err := n.openStore(has, id, snaps)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, st.Close)
	n.members = newMembers(cfg.Nodes)
	n.signals = signals{}
	n.fsm = &fsm{path: cfg.DBPath, opts: replicaStoreOptions(cfg), archiveKeep: cfg.ArchiveKeep, hooks: cfg.Hooks, signals: &n.signals,
		members: n.members, st: st, fail: n.failed, over: n.roundOver}
	n.ident = &identity{id: id, persist: func(id ID) error {
		return errors.Join(n.logs.Set(keyClusterID, id[:]), n.fsm.store().SetClusterID(id.String()))
	}}
	var cut func(int) bool
	if cfg.Hooks != nil {
		cut = cfg.Hooks.Cut
	}
	n.stream = newStreamLayer(cfg.ID, staticAddr(cfg.Nodes[cfg.ID]), cfg.TLS, cfg.Insecure, n.members, n.ident, cut)
	cleanup = append(cleanup, n.stream.Close)
	n.trans = newTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 3, Timeout: 5 * time.Second, Logger: hlog, MaxRPCsInFlight: 16}))
	cleanup = append(cleanup, n.trans.Close)
	n.answers = newAnswerer()
	cleanup = append(cleanup, func() error { n.answers.close(); return nil })
	notify := make(chan bool, 8)
	rc := n.raftConfig(hlog, notify)
	if !has && !cfg.Join {
		var servers []raft.Server
		for _, nid := range sortedIDs(cfg.Nodes) {
			servers = append(servers, raft.Server{ID: serverID(nid), Address: raft.ServerAddress(cfg.Nodes[nid])})
		}
		if err := raft.BootstrapCluster(rc, n.logs, n.logs, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
			return nil, fmt.Errorf("raft: %w", err)
		}
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.logs, n.logs, snaps, n.trans); err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	close(n.started)
	ok = true
	n.checkMembership(has)
	n.done.Add(3)
	go n.watch(notify)
	go n.refreshMembers()
	go n.snapshotWhenOver()
	return n, nil
}

// raftConfig is raft's configuration for this node.
func (n *Node) raftConfig(hlog *raftLog, notify chan bool) *raft.Config {
	t, s := n.cfg.Timeouts, n.cfg.Snapshots
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(n.cfg.ID)
	rc.Logger = hlog
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout, rc.CommitTimeout = t.Heartbeat, t.Election, t.LeaderLease, t.Commit
	// Concurrent writes (many agencies' batches) share one log append and
	// one fsync, as group commit does for one central.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs = s.Interval, s.Threshold, s.Trailing
	// A trusted store is the FSM as it was: raft must not restore a
	// snapshot over it (that would copy the whole store at every start).
	rc.NoSnapshotRestoreOnStart = n.trusted
	// Leadership changes arrive here, every one: raft blocks until they are
	// taken (watch), where an observer's would be dropped when its buffer
	// is full.
	rc.NotifyCh = notify
	return rc
}

// replicaStoreOptions are a replica's store options: no fsync (raft's log
// is durable, see trust.go) and a memory map that seldom needs to grow.
func replicaStoreOptions(cfg Config) store.Options {
	return store.Options{Now: cfg.Now, NoSync: true, NoFreelistSync: true, MmapSize: mmapSize(1 << 30), Check: cfg.StoreCheck}
}

// mmapSize is n where a memory map larger than its file only reserves
// address space, and 0 (bbolt's default) on Windows, where bbolt grows the
// file to its map, and on 32-bit platforms.
func mmapSize(n int) int {
	if runtime.GOOS == "windows" || strconv.IntSize == 32 {
		return 0
	}
	return n
}

// clusterID returns this node's cluster ID, recording it in raft's stable
// store when the node bootstraps (or its state predates cluster IDs). A
// node that joins has none until a member connects.
func (n *Node) clusterID(has bool) (ID, error) {
	id, err := storedID(n.logs)
	if err != nil {
		return id, err
	}
	if id.IsZero() && (has || !n.cfg.Join) {
		id = BootstrapID(n.cfg.Nodes)
		if err := n.logs.Set(keyClusterID, id[:]); err != nil {
			return id, err
		}
	}
	return id, nil
}

// checkMembership says at start when raft's configuration does not hold
// this node as CLUSTER_NODES names it: the live membership is raft's.
func (n *Node) checkMembership(has bool) {
	servers, err := n.configuration()
	if err != nil || !has && n.cfg.Join {
		return
	}
	n.members.set(servers)
	self, addr := serverID(n.cfg.ID), n.cfg.Nodes[n.cfg.ID]
	for _, s := range servers {
		if s.ID == self && string(s.Address) == addr {
			return
		}
	}
	live := map[int]string{}
	for _, s := range servers {
		if id, err := parseServerID(s.ID); err == nil {
			live[id] = string(s.Address)
		}
	}
	n.log.Warningf("action: cluster_start | result: in_progress | nodo: %d | aviso: %s", n.cfg.ID, logformat.Value(fmt.Sprintf(
		"raft's configuration (%s) does not hold this node as CLUSTER_NODES names it (%d=%s): the cluster's membership is raft's; change it with server cluster add/remove",
		FormatNodes(live), n.cfg.ID, addr)))
}

// configuration is raft's latest configuration.
func (n *Node) configuration() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := n.answers.wait(f, n.cfg.Timeouts.Apply); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// refreshMembers keeps the members' view current with raft's latest
// configuration (the FSM learns only committed ones).
func (n *Node) refreshMembers() {
	defer n.done.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			if servers, err := n.configuration(); err == nil && len(servers) > 0 {
				n.members.set(servers)
			}
		}
	}
}

// failed stops the node for good: an entry it cannot apply must not be
// skipped (the replicas would diverge). It is told once.
func (n *Node) failed(err error) {
	n.serving.Store(false)
	n.log.Criticalf("action: cluster_apply | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
	n.fatal <- err
}

// Fatal yields the error that stopped the node's FSM (an entry it could not
// apply); the central then stops, and the process exits non-zero.
func (n *Node) Fatal() <-chan error { return n.fatal }

// roundOver asks for a snapshot: the round's last delivery was applied,
// and the log behind it can go.
func (n *Node) roundOver() {
	select {
	case n.snapshot <- struct{}{}:
	default:
	}
}

func (n *Node) snapshotWhenOver() {
	defer n.done.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.snapshot:
			if err := n.answers.wait(n.raft.Snapshot(), time.Minute); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
				n.log.Warningf("action: cluster_snapshot | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
			}
		}
	}
}

// Close leaves the cluster's work to the others: raft shuts down (bounded),
// the stores close, and, when every entry handed to the store was applied
// and synced, the clean marker is written (trust.go).
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.done.Wait()
		// Not through the answerer: a future raft never answers (a write
		// left in its queue by a leader that is shutting down,
		// hashicorp/raft#498) holds it, and the shutdown would wait behind
		// it until its bound, failing a clean stop.
		err := waitAlone(n.raft.Shutdown(), 10*time.Second)
		n.stream.Close()
		n.trans.Close()
		n.answers.close()
		damaged := n.fsm.store().Damage()
		applied, ferr := n.fsm.close()
		lerr := n.logs.Close()
		if err == nil && ferr == nil && n.fsm.latched() == nil && damaged == nil {
			err = writeMarker(n.dir, n.cfg.DBPath, applied, n.ident.get())
		}
		n.closeErr = errors.Join(err, ferr, lerr)
	})
	return n.closeErr
}
