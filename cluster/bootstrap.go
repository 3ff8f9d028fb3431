package cluster

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/logformat"
)

// A new cluster is bootstrapped by the nodes of its CLUSTER_NODES together,
// each started without raft state and without CLUSTER_JOIN. Each probes
// every other until it has heard from all of them: waiting to bootstrap
// (fresh) with the same list, or already bootstrapped from the same nonces
// (a node that got there first). Then each bootstraps raft with the list as
// its voters and the cluster ID that the list and the nonces give
// (NonceID): the same ID on every node, unique to this bootstrap.
//
// A node that reached the others does not bootstrap beside a cluster that
// exists: a peer that belongs to a cluster of other nonces (a cluster seeded
// from a backup, an earlier cluster at the same addresses, one this node's
// lost state once bootstrapped) stops it with one line saying what to do
// (join that cluster, or move that peer's folder aside). A peer that does
// not answer keeps it waiting, serving nothing: a cluster is bootstrapped
// with all of its nodes, never with the ones that happen to be up (those
// could form a second cluster beside a seeded one).

// probeEvery is how often a fresh node asks its peers again.
const probeEvery = 200 * time.Millisecond

// bootstrap probes the peers until the cluster can be bootstrapped, then
// bootstraps it, or stops the node when it must not.
func (n *Node) bootstrap() {
	defer n.done.Done()
	waiting := map[int]string{} // what was last said of a peer that keeps this node waiting
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		id, err := n.probePeers(waiting)
		if err != nil {
			n.log.Criticalf("action: cluster_start | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
			n.stopFor(err)
			return
		}
		if !id.IsZero() {
			if err := n.bootstrapAs(id); err != nil {
				n.log.Criticalf("action: cluster_start | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
				n.stopFor(err)
			}
			return
		}
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// probePeers asks every other node of CLUSTER_NODES what it is. It returns
// the cluster's ID once every one has answered as a node of this bootstrap
// (zero while some keep it waiting: their reasons in waiting, each logged
// when it changes), or an error when this node must not bootstrap.
func (n *Node) probePeers(waiting map[int]string) (ID, error) {
	nonces := map[int]Nonce{n.cfg.ID: n.nonce}
	members := map[int]ID{}
	mine := nodesHash(n.cfg.Nodes)
	for _, p := range sortedIDs(n.cfg.Nodes) {
		if p == n.cfg.ID {
			continue
		}
		addr := n.cfg.Nodes[p]
		r, i, err := n.stream.probe(addr, p, 2*time.Second)
		why := ""
		switch {
		case err != nil:
			why = fmt.Sprintf("node %d at %s does not answer yet (%v)", p, addr, err)
		case r.node != p:
			why = fmt.Sprintf("%s answers as node %d, not node %d: check CLUSTER_NODES", addr, r.node, p)
		case i.version < 2 && !r.cluster.IsZero():
			return ID{}, n.another(p, addr, r.cluster)
		case i.version < 2:
			why = fmt.Sprintf("node %d at %s runs a version that cannot bootstrap with this one: run this version on every node of a new cluster", p, addr)
		case i.state == stateMember && i.nodes != mine:
			return ID{}, n.another(p, addr, r.cluster) // bootstrapped from another list: never this bootstrap
		case i.state == stateMember:
			nonces[p], members[p] = i.nonce, r.cluster
		case i.nodes != mine:
			why = fmt.Sprintf("node %d at %s was started with another CLUSTER_NODES: every node of a new cluster is started with the same list (%s)", p, addr, FormatNodes(n.cfg.Nodes))
		case i.state == stateJoining:
			why = fmt.Sprintf("node %d at %s waits to be added to a cluster (CLUSTER_JOIN=true): the nodes of a new cluster's CLUSTER_NODES bootstrap it together, without it", p, addr)
		default:
			nonces[p] = i.nonce
		}
		if why == "" {
			delete(waiting, p)
			continue
		}
		if waiting[p] != why {
			waiting[p] = why
			n.log.Infof("action: cluster_start | result: in_progress | nodo: %d | espera: %s", n.cfg.ID, logformat.Value(why))
		}
	}
	if len(waiting) > 0 {
		return ID{}, nil
	}
	id := NonceID(n.cfg.Nodes, nonces)
	for _, p := range sortedIDs(n.cfg.Nodes) {
		if other, ok := members[p]; ok && other != id {
			return ID{}, n.another(p, n.cfg.Nodes[p], other)
		}
	}
	return id, nil
}

// another is the refusal to bootstrap beside peer p's cluster.
func (n *Node) another(p int, addr string, cluster ID) error {
	return fmt.Errorf("%w: node %d at %s already belongs to cluster %s, not bootstrapped with this node: to join it, restart this node with CLUSTER_JOIN=true "+
		"and add it on its leader (server cluster add %d %s); if it is an earlier cluster at these addresses, move node %d's DB_PATH and DB_PATH.raft aside",
		ErrOtherCluster, p, addr, cluster, n.cfg.ID, n.cfg.Nodes[n.cfg.ID], p)
}

// bootstrapAs bootstraps raft with CLUSTER_NODES as its voters and id as
// the cluster's ID.
func (n *Node) bootstrapAs(id ID) error {
	if err := n.ident.set(id); err != nil {
		return err
	}
	var servers []raft.Server
	for _, nid := range sortedIDs(n.cfg.Nodes) {
		servers = append(servers, raft.Server{ID: serverID(nid), Address: raft.ServerAddress(n.cfg.Nodes[nid])})
	}
	if err := wait(n.raft.BootstrapCluster(raft.Configuration{Servers: servers}), n.cfg.Timeouts.Apply); err != nil {
		return fmt.Errorf("raft: bootstrapping: %w", err)
	}
	n.fresh.Store(false)
	n.wasMember.Store(true)
	n.log.Infof("action: cluster_start | result: success | nodo: %d | id_cluster: %s | arranque: %s", n.cfg.ID, id, logformat.Value(FormatNodes(n.cfg.Nodes)))
	return nil
}
