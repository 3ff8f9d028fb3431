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
	// ErrRaftState means this node's raft state is missing or cannot be
	// read: it refuses to start rather than forget its votes and log.
	ErrRaftState = errors.New("this node's raft state is not whole")
	// ErrRemoved means the node was removed from the cluster (server
	// cluster remove): it stops.
	ErrRemoved = errors.New("this node was removed from the cluster")
)

// EntryFormat is the entry format this version reads and writes (command.go):
// 1, the first version's entries; 2 adds the cluster's version and the
// checkpoints. A node says it in every handshake, and the leader raises the
// cluster's version, in the log, once every member reads it.
const EntryFormat = 2

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
	snaps   *raft.FileSnapshotStore
	members *members
	peers   *peers
	ident   *identity
	nonce   Nonce
	signals signals
	trusted bool // the store was trusted at start (a clean stop)
	// integrity: the checkpoints this store was held to (leading.go);
	// roundEnded: a round ended, and the leader owes it a checkpoint.
	integrity  integrity
	roundEnded atomic.Bool
	// fresh: the node waits to bootstrap with the others of its
	// CLUSTER_NODES (bootstrap.go); joining: to be added (CLUSTER_JOIN).
	fresh, joining atomic.Bool
	wasMember      atomic.Bool // raft's configuration held this node once

	started    chan struct{} // closed once raft runs (n.raft is set)
	serving    atomic.Bool   // leads, caught up, and the central took the round
	proposing  sync.RWMutex  // held by each proposal, taken whole by a checkpoint (checkpoint.go)
	mu         sync.Mutex    // guards leadership
	leadership func(ctx context.Context, leading bool) error
	registered chan struct{} // closed when leadership is set
	fatal      chan error    // the node stops: an entry it could not apply, a refused bootstrap, its removal
	fatalOnce  sync.Once
	mismatches verdicts      // peers that answered as another cluster's members
	outsiders  verdicts      // peers of this cluster that refused this node as no member
	snapshot   chan struct{} // the round is over: snapshot now
	unlock     func() error  // lets go of the raft folder (lock.go)
	stop       chan struct{}
	done       sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// Start opens the replica's store and raft state and joins the cluster. A
// node with no raft state bootstraps the cluster from cfg.Nodes together
// with every other node of the list (bootstrap.go), or, with cfg.Join,
// waits for the leader to add it. Its raft state must be whole: a log that
// starts after a snapshot that is gone, or a replica's store beside no raft
// state (its votes and log lost), is refused (ErrRaftState) with what to do.
func Start(cfg Config) (*Node, error) {
	if _, ok := cfg.Nodes[cfg.ID]; !ok {
		return nil, fmt.Errorf("node %d is not one of CLUSTER_NODES (%s)", cfg.ID, FormatNodes(cfg.Nodes))
	}
	if cfg.Hooks != nil && cfg.Hooks.Tune != nil {
		cfg.Hooks.Tune(&cfg)
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
		fatal: make(chan error, 1), snapshot: make(chan struct{}, 1), stop: make(chan struct{}), peers: newPeers()}
	if err := os.MkdirAll(n.dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft state %s: %w", n.dir, err)
	}
	unlock, err := lockFolder(n.dir, time.Second)
	if err != nil {
		return nil, err
	}
	n.unlock = unlock
	ok := false
	cleanup := []func() error{unlock}
	defer func() {
		if !ok {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	hlog := newRaftLog(cfg.Logger, cfg.ID)
	if n.logs, err = openLogStore(n.dir, cfg.LogStore, cfg.WALSegmentSize, hlog); err != nil {
		return nil, n.lost(err)
	}
	cleanup = append(cleanup, n.logs.Close)
	if n.snaps, err = raft.NewFileSnapshotStoreWithLogger(n.dir, 2, hlog); err != nil {
		return nil, n.lost(err)
	}
	has, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
	if err != nil {
		return nil, n.lost(err)
	}
	if has {
		if err := n.checkRaftState(); err != nil {
			return nil, err
		}
	}
	id, err := n.clusterID(has)
	if err != nil {
		return nil, err
	}
	if err := n.checkAmnesia(has, id); err != nil {
		return nil, err
	}
	st, err := n.openStore(has, id, n.snaps)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, st.Close)
	n.readDivergence()
	n.members = newMembers(cfg.Nodes)
	n.fsm = &fsm{path: cfg.DBPath, opts: replicaStoreOptions(cfg), archiveKeep: cfg.ArchiveKeep, hooks: cfg.Hooks, signals: &n.signals,
		members: n.members, st: st, fail: n.failed, over: n.roundOver, checkpoint: n.checkpointed, configured: n.configured}
	n.ident = &identity{id: id, joining: id.IsZero() && cfg.Join, persist: func(id ID) error {
		return errors.Join(n.logs.Set(keyClusterID, id[:]), n.fsm.store().SetClusterID(id.String()))
	}}
	var cut func(int) bool
	if cfg.Hooks != nil {
		cut = cfg.Hooks.Cut
	}
	n.stream = newStreamLayer(cfg.ID, staticAddr(cfg.Nodes[cfg.ID]), cfg.TLS, cfg.Insecure, n.members, n.ident, n.about, n.peers, cut)
	n.stream.mismatch, n.stream.notMember = n.mismatched, n.refusedAsNoMember
	cleanup = append(cleanup, n.stream.Close)
	n.trans = newTransport(raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 3, Timeout: 5 * time.Second, Logger: hlog, MaxRPCsInFlight: 16}))
	cleanup = append(cleanup, n.trans.Close)
	notify := make(chan bool, 8)
	if n.raft, err = raft.NewRaft(n.raftConfig(hlog, notify), n.fsm, n.logs, n.logs, n.snaps, n.trans); err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	close(n.started)
	ok = true
	observed := make(chan raft.Observation, 16)
	n.raft.RegisterObserver(raft.NewObserver(observed, false, func(o *raft.Observation) bool {
		_, state := o.Data.(raft.RaftState)
		return state
	}))
	if has {
		n.checkMembership()
	}
	n.done.Add(5)
	go n.watch(notify)
	go n.observe(observed)
	go n.refreshMembers()
	go n.snapshotWhenOver()
	go n.leaderLoop()
	if n.fresh.Load() {
		n.done.Add(1)
		go n.bootstrap()
	}
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

// about is what this node says of itself in a handshake.
func (n *Node) about() info {
	i := info{version: EntryFormat, state: stateMember, admin: n.cfg.AdminURL, nonce: n.nonce, nodes: nodesHash(n.cfg.Nodes)}
	switch {
	case n.fresh.Load():
		i.state = stateFresh
	case n.ident.get().IsZero(), n.cfg.Join && !n.holdsEntries():
		// A joining node learns the cluster's ID from the first member
		// that connects (a leader's replication to a node removed from
		// this address may be that one): it holds the cluster's state
		// only once it holds entries.
		i.state = stateJoining
	}
	return i
}

// holdsEntries reports whether the node's log or snapshots hold entries.
func (n *Node) holdsEntries() bool {
	if last, err := n.logs.LastIndex(); err != nil || last > 0 {
		return true
	}
	snaps, err := n.snaps.List()
	return err != nil || len(snaps) > 0
}

// checkMembership says at start when raft's configuration does not hold
// this node as CLUSTER_NODES names it: the live membership is raft's.
func (n *Node) checkMembership() {
	servers, err := n.configuration()
	if err != nil || len(servers) == 0 {
		return
	}
	n.members.set(servers)
	self, addr := serverID(n.cfg.ID), n.cfg.Nodes[n.cfg.ID]
	live := map[int]string{}
	for _, s := range servers {
		if s.ID == self && string(s.Address) == addr {
			n.wasMember.Store(true)
			return
		}
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
	if err := wait(f, n.cfg.Timeouts.Apply); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// refreshMembers keeps the members' view current with raft's latest
// configuration (the FSM learns only committed ones), and stops the node
// once that configuration no longer holds it: it was removed.
func (n *Node) refreshMembers() {
	defer n.done.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.raft.State() == raft.Shutdown {
			n.stopFor(ErrRemoved) // the leader removed itself: raft shut down (ShutdownOnRemove)
			return
		}
		servers, err := n.configuration()
		if err != nil || len(servers) == 0 {
			continue
		}
		n.members.set(servers)
		member := false
		for _, s := range servers {
			member = member || s.ID == serverID(n.cfg.ID)
		}
		// raft's latest configuration, committed or not: a follower removed
		// may never learn the removal's commit (the leader stops sending to
		// it), and raft itself stops it from campaigning once it holds it.
		if member {
			n.wasMember.Store(true)
		} else if n.wasMember.Load() {
			n.stopFor(ErrRemoved)
			return
		}
	}
}

// configured notes that a committed configuration holds this node: it is
// a member (a joining node, once added), and a later configuration without
// it means it was removed.
func (n *Node) configured(servers []raft.Server) {
	for _, s := range servers {
		if s.ID == serverID(n.cfg.ID) {
			n.wasMember.Store(true)
		}
	}
}

// observe logs each change of raft's role, as raft observes it, with the
// term it has then.
func (n *Node) observe(obs <-chan raft.Observation) {
	defer n.done.Done()
	for {
		select {
		case <-n.stop:
			return
		case o := <-obs:
			state, _ := o.Data.(raft.RaftState)
			if state == raft.Shutdown {
				continue
			}
			n.log.Infof("action: cluster_role | result: success | nodo: %d | rol: %s | termino: %d", n.cfg.ID, roles[state], n.raft.CurrentTerm())
		}
	}
}

// failed stops the node for good: an entry it cannot apply must not be
// skipped (the replicas would diverge), and a store that differs from the
// leader's must not serve. It is told once.
func (n *Node) failed(err error) {
	n.serving.Store(false)
	if errors.Is(err, store.ErrDiverged) {
		n.diverged(err)
	} else {
		n.log.Criticalf("action: cluster_apply | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
	}
	n.stopFor(err)
}

// stopFor stops the node's serving and tells the central why it must stop
// (Fatal), once.
func (n *Node) stopFor(err error) {
	n.fatalOnce.Do(func() {
		n.serving.Store(false)
		if errors.Is(err, ErrRemoved) {
			n.log.Warningf("action: cluster_member | result: success | nodo: %d | aviso: %s", n.cfg.ID, logformat.Value(
				"this node was removed from the cluster (server cluster remove): it stops; its folder belongs to no cluster now (start it again only as a new member: an empty DB_PATH, CLUSTER_JOIN=true, server cluster add)"))
		}
		n.fatal <- err
	})
}

// Fatal yields the error that stopped the node: an entry it could not
// apply (ErrApply), a bootstrap it refused, its removal (ErrRemoved). The
// central then stops; the process exits non-zero, but for a removal.
func (n *Node) Fatal() <-chan error { return n.fatal }

// roundOver asks for a snapshot, and the leader for a checkpoint: the
// round's last delivery was applied, and the log behind it can go.
func (n *Node) roundOver() {
	n.roundEnded.Store(true)
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
			if err := wait(n.raft.Snapshot(), time.Minute); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
				n.log.Warningf("action: cluster_snapshot | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
			}
		}
	}
}

// shutdownWait bounds raft's shutdown at a clean stop.
const shutdownWait = 10 * time.Second

// Close leaves the cluster's work to the others: raft shuts down (bounded),
// the stores close, and, when every entry handed to the store was applied
// and synced, the clean marker is written (trust.go). When raft does not
// stop within its bound, its goroutines may still apply entries: the store
// is left open, without a marker (rebuilt at the next start), and Close
// fails, so that the process exits non-zero.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.done.Wait()
		if err := wait(n.raft.Shutdown(), shutdownWait); err != nil {
			n.stream.Close()
			n.trans.Close()
			n.closeErr = fmt.Errorf("raft did not shut down: %w; the store is left as it is, and is rebuilt at the next start", err)
			return
		}
		n.stream.Close()
		n.trans.Close()
		damaged := n.fsm.store().Damage()
		applied, ferr := n.fsm.close()
		lastLog, lerr := n.logs.LastIndex()
		lerr = errors.Join(lerr, n.logs.Close())
		var err error
		if ferr == nil && lerr == nil && n.fsm.latched() == nil && damaged == nil {
			err = writeMarker(n.dir, n.cfg.DBPath, applied, lastLog, n.ident.get())
		}
		n.closeErr = errors.Join(err, ferr, lerr, n.unlock())
	})
	return n.closeErr
}
