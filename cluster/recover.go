package cluster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// Offline operations on a stopped node's files: the recovery of a cluster
// that lost its quorum for good, and a new cluster seeded from a backup.

// offline opens a stopped node's raft state.
func offline(cfg Config) (raftStore, *raft.FileSnapshotStore, *raft.Config, error) {
	if cfg.LogStore == "" {
		cfg.LogStore = DefaultLogStore
	}
	if cfg.Logger == nil {
		cfg.Logger = logformat.Discard
	}
	dir := cfg.DBPath + ".raft"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, err
	}
	hlog := newRaftLog(cfg.Logger, cfg.ID)
	logs, err := openLogStore(dir, cfg.LogStore, cfg.WALSegmentSize, hlog)
	if err != nil {
		return nil, nil, nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		logs.Close()
		return nil, nil, nil, err
	}
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.ID)
	rc.Logger = hlog
	return logs, snaps, rc, nil
}

func configurationOf(nodes map[int]string) raft.Configuration {
	var c raft.Configuration
	for _, id := range sortedIDs(nodes) {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: serverID(id), Address: raft.ServerAddress(nodes[id])})
	}
	return c
}

// Recover makes cfg.Nodes the whole cluster in the stopped node's raft
// state (raft.RecoverCluster, as Consul's peers.json): its snapshot and
// every entry of its log, committed or not, become its state, and the
// configuration is replaced. It is for a cluster that lost its quorum for
// good (two of three machines gone): every entry the survivor lacks, acked
// by the lost quorum, is lost, and two survivors recovered apart become two
// clusters. The recovered cluster gets a new ID, so that a node of the old
// configuration that comes back cannot mix with it, and its store is
// rebuilt at the next start.
//
// A node whose folder is in use (the node runs) is refused at once
// (ErrInUse). Before anything changes, tell is given the members of the
// latest configuration that are not in cfg.Nodes: they must be stopped for
// good; an error from tell changes nothing.
func Recover(cfg Config, tell func(gone map[int]string) error) (ID, error) {
	if _, ok := cfg.Nodes[cfg.ID]; !ok {
		return ID{}, fmt.Errorf("node %d is not one of the nodes to recover (%s)", cfg.ID, FormatNodes(cfg.Nodes))
	}
	unlock, err := lockFolder(cfg.DBPath+".raft", time.Second)
	if err != nil {
		return ID{}, err
	}
	defer unlock()
	logs, snaps, rc, err := offline(cfg)
	if err != nil {
		return ID{}, err
	}
	defer logs.Close()
	if has, err := raft.HasExistingState(logs, logs, snaps); err != nil || !has {
		return ID{}, errors.Join(err, fmt.Errorf("%s.raft holds no raft state: there is nothing to recover", cfg.DBPath))
	}
	latest, err := latestConfiguration(logs, snaps)
	if err != nil {
		return ID{}, err
	}
	gone := map[int]string{}
	for _, s := range latest.Servers {
		if id, err := parseServerID(s.ID); err == nil && cfg.Nodes[id] == "" {
			gone[id] = string(s.Address)
		}
	}
	if err := tell(gone); err != nil {
		return ID{}, err
	}
	tmp := cfg.DBPath + ".recover"
	os.Remove(tmp)
	defer os.Remove(tmp)
	st, err := store.Open(tmp, replicaStoreOptions(cfg))
	if err != nil {
		return ID{}, err
	}
	f := &fsm{path: tmp, opts: replicaStoreOptions(cfg), signals: &signals{}, members: newMembers(cfg.Nodes), st: st, fail: func(error) {}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Nodes[cfg.ID]))
	err = raft.RecoverCluster(rc, f, logs, logs, snaps, trans, configurationOf(cfg.Nodes))
	f.store().Close()
	if err != nil {
		return ID{}, fmt.Errorf("recover: %w", err)
	}
	if err := f.latched(); err != nil {
		return ID{}, fmt.Errorf("recover: %w", err)
	}
	id := NewID()
	if err := logs.Set(keyClusterID, id[:]); err != nil {
		return ID{}, err
	}
	// The store is of the old cluster and no longer matches the raft
	// state: it goes, with its clean marker, and is rebuilt at the start.
	if err := os.Remove(cfg.DBPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ID{}, err
	}
	_, _, err = takeMarker(cfg.DBPath + ".raft")
	return id, err
}

// latestConfiguration reads the latest configuration of a stopped node's
// raft state: its latest snapshot's, or a later one in its log.
func latestConfiguration(logs raft.LogStore, snaps raft.SnapshotStore) (raft.Configuration, error) {
	var c raft.Configuration
	after := uint64(0)
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		c, after = list[0].Configuration, list[0].Index
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return c, err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return c, err
	}
	for i := max(first, after+1); i <= last && i > 0; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return c, fmt.Errorf("reading log index %d: %w", i, err)
		}
		if l.Type == raft.LogConfiguration {
			c = raft.DecodeConfiguration(l.Data)
		}
	}
	return c, nil
}

// Seed makes a backup (a store file, see store.Store.Backup) the first
// state of a new cluster of one node, this one, with a new ID: the stopped
// node, which has no raft state, gets a snapshot at log index 1 holding the
// backup (its applied index set to 1, whatever the cluster it came from had
// recorded: a new cluster's log starts at 1), and its store is the backup.
// Started, it leads a cluster whose round is the backup's. The other nodes
// can only enter it by joining: each started empty with CLUSTER_JOIN=true,
// then added on the leader (server cluster add). A node started empty
// without it would wait to bootstrap a cluster with its CLUSTER_NODES, find
// this one, and stop, saying so (bootstrap.go): it never bootstraps a
// second cluster beside the seeded one.
func Seed(cfg Config, backup io.Reader) (ID, error) {
	if _, ok := cfg.Nodes[cfg.ID]; !ok {
		return ID{}, fmt.Errorf("node %d is not one of CLUSTER_NODES (%s)", cfg.ID, FormatNodes(cfg.Nodes))
	}
	if _, err := os.Stat(cfg.DBPath); err == nil {
		return ID{}, fmt.Errorf("%s exists: a seeded node starts from the backup alone (move the file aside)", cfg.DBPath)
	}
	logs, snaps, _, err := offline(cfg)
	if err != nil {
		return ID{}, err
	}
	defer logs.Close()
	if has, err := raft.HasExistingState(logs, logs, snaps); err != nil || has {
		return ID{}, errors.Join(err, fmt.Errorf("%s.raft holds raft state: only a node that never ran can be seeded", cfg.DBPath))
	}
	if err := store.Restore(cfg.DBPath, backup, cfg.StoreCheck); err != nil {
		return ID{}, err
	}
	id := NewID()
	st, err := store.Open(cfg.DBPath, replicaStoreOptions(cfg))
	if err != nil {
		return ID{}, err
	}
	err = st.SetReplica(1, id.String())
	if err == nil {
		err = st.Sync()
	}
	if err := errors.Join(err, st.Close()); err != nil {
		os.Remove(cfg.DBPath)
		return ID{}, err
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Nodes[cfg.ID]))
	self := map[int]string{cfg.ID: cfg.Nodes[cfg.ID]}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 1, 1, configurationOf(self), 1, trans)
	if err != nil {
		return ID{}, err
	}
	f, err := os.Open(cfg.DBPath)
	if err != nil {
		sink.Cancel()
		return ID{}, err
	}
	_, err = io.Copy(sink, f)
	f.Close()
	if err != nil {
		sink.Cancel()
		return ID{}, err
	}
	if err := sink.Close(); err != nil {
		return ID{}, err
	}
	if err := errors.Join(logs.Set(keyClusterID, id[:]), logs.SetUint64([]byte("CurrentTerm"), 1)); err != nil {
		return ID{}, err
	}
	return id, writeMarker(cfg.DBPath+".raft", cfg.DBPath, 1, 1, id)
}
