package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	hlog := newRaftLog(cfg.Logger, cfg.ID, nil)
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
// clusters. Its store is rebuilt at the next start.
func Recover(cfg Config) error {
	if _, ok := cfg.Nodes[cfg.ID]; !ok {
		return fmt.Errorf("node %d is not one of the nodes to recover (%s)", cfg.ID, FormatNodes(cfg.Nodes))
	}
	logs, snaps, rc, err := offline(cfg)
	if err != nil {
		return err
	}
	defer logs.Close()
	tmp := cfg.DBPath + ".recover"
	os.Remove(tmp)
	defer os.Remove(tmp)
	st, err := store.Open(tmp, replicaStoreOptions(cfg))
	if err != nil {
		return err
	}
	f := &fsm{path: tmp, opts: replicaStoreOptions(cfg), signals: &signals{}, members: newMembers(cfg.Nodes), st: st, fail: func(error) {}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.Nodes[cfg.ID]))
	err = raft.RecoverCluster(rc, f, logs, logs, snaps, trans, configurationOf(cfg.Nodes))
	f.store().Close()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := f.latched(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	// The store no longer matches the raft state: no clean marker.
	_, _, err = takeMarker(cfg.DBPath + ".raft")
	return err
}

// Seed makes a backup (a store file, see store.Store.Backup) the first
// state of a new cluster: the stopped node, which has no raft state, gets a
// snapshot at log index 1 holding the backup (its applied index set to 1,
// whatever the cluster it came from had recorded: a new cluster's log
// starts at 1) with cfg.Nodes as the configuration, and its store is the
// backup. Started with the same CLUSTER_NODES, it leads a cluster whose
// round is the backup's; the other nodes start empty with Join (they catch
// up from the snapshot) and are added, or are named in cfg.Nodes.
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
	id := BootstrapID(cfg.Nodes)
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
	sink, err := snaps.Create(raft.SnapshotVersionMax, 1, 1, configurationOf(cfg.Nodes), 1, trans)
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
	return id, writeMarker(cfg.DBPath+".raft", cfg.DBPath, 1, id)
}
