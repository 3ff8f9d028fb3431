package cluster

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/loteria-nacional/tp0/store"
)

// What a node's folders must hold before raft starts on them: whole raft
// state (a log, term and vote beside the snapshots, no gap between them),
// raft state beside a replica's store, and the cluster's ID. Each refusal
// names what is missing and how to replace the node.

// lost wraps an error reading this node's raft state with what to do.
func (n *Node) lost(err error) error {
	return fmt.Errorf("%w: cannot read %s: %w. %s", ErrRaftState, n.dir, err, n.replaceIt())
}

// replaceIt says how to replace this node safely.
func (n *Node) replaceIt() string {
	return fmt.Sprintf("Remove node %d (server cluster remove %d, on the leader), then add it again under a new id with an empty DB_PATH and CLUSTER_JOIN=true", n.cfg.ID, n.cfg.ID)
}

// checkRaftState refuses raft state that is not whole: snapshots without
// the log and stable store beside them, or a log whose first entry is not
// the one after the latest snapshot (the snapshot the earlier entries were
// compacted into is gone: raft would panic on the first entry it cannot
// find).
func (n *Node) checkRaftState() error {
	if term, err := n.logs.GetUint64([]byte("CurrentTerm")); err != nil && !notFound(err) || term == 0 {
		return n.lost(fmt.Errorf("its snapshots are there but its log and stable store are not (no current term): the node would forget its votes"))
	}
	first, err := n.logs.FirstIndex()
	if err != nil {
		return n.lost(err)
	}
	snap := lastSnapshot(n.snaps)
	if first > 1 && first > snap+1 {
		return n.lost(fmt.Errorf("the log starts at index %d, and the entries before it are in no snapshot (the latest in %s is at index %d): its snapshots are gone",
			first, filepath.Join(n.dir, "snapshots"), snap))
	}
	last, err := n.logs.LastIndex()
	if err != nil {
		return n.lost(err)
	}
	if m, ok := peekMarker(n.dir); ok && (m.LastLog > max(last, snap) || m.Applied > max(last, snap)) {
		return n.lost(fmt.Errorf("the log ends at index %d (its latest snapshot at %d), but at the clean stop it ended at %d, with %d applied: entries the node had are gone (log segments removed?)",
			last, snap, m.LastLog, m.Applied))
	}
	return nil
}

// checkAmnesia refuses a replica's store beside a raft folder that holds no
// raft state: the node applied entries (or joined a cluster) and its log,
// term and vote are gone. Started as new, it would vote again in a term it
// voted in, and a leader could be elected without entries a quorum had.
func (n *Node) checkAmnesia(has bool, id ID) error {
	if has {
		return nil
	}
	if _, err := os.Stat(n.cfg.DBPath); err != nil {
		return nil
	}
	st, err := store.Open(n.cfg.DBPath, store.Options{ReadOnly: true, Check: n.cfg.StoreCheck})
	if err != nil {
		return nil // not a store this node can read: openStore sets it aside
	}
	defer st.Close()
	applied, _ := st.AppliedIndex()
	cluster, _ := st.ClusterID()
	if applied == 0 && (cluster == "" || !id.IsZero()) {
		return nil
	}
	return fmt.Errorf("%w: DB_PATH holds the store of a replica of cluster %s (applied index %d), but DB_PATH.raft holds no raft state: its log, term and vote are gone. %s",
		ErrRaftState, cluster, applied, n.replaceIt())
}

// clusterID returns this node's cluster ID from raft's stable store. A node
// whose raft state predates cluster IDs takes the one the first version
// derived from its CLUSTER_NODES. A node without raft state has none: it
// bootstraps (fresh: its bootstrap nonce made and kept now) or joins.
func (n *Node) clusterID(has bool) (ID, error) {
	id, err := storedID(n.logs)
	if err != nil {
		return id, n.lost(err)
	}
	if n.nonce, err = storedNonce(n.logs); err != nil {
		return id, n.lost(err)
	}
	switch {
	case id.IsZero() && has:
		id = listID(n.cfg.Nodes)
		if err := n.logs.Set(keyClusterID, id[:]); err != nil {
			return id, err
		}
	case id.IsZero() && n.cfg.Join:
		n.joining.Store(true)
	case id.IsZero() && len(n.cfg.Nodes)%2 == 0:
		return id, fmt.Errorf("CLUSTER_NODES names %d nodes (%s): a new cluster is bootstrapped by an odd number of nodes (1, 3, 5); a node that joins a cluster (CLUSTER_JOIN=true) may name any number",
			len(n.cfg.Nodes), FormatNodes(n.cfg.Nodes))
	case id.IsZero():
		n.fresh.Store(true)
		if n.nonce == (Nonce{}) {
			n.nonce = newNonce()
			if err := n.logs.Set(keyNonce, n.nonce[:]); err != nil {
				return id, err
			}
		}
	}
	return id, nil
}
