package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/loteria-nacional/tp0/logformat"
)

// ID identifies a cluster: one bootstrap, never the address list alone. Every
// replica keeps it in raft's stable store and in its bets store, and sends
// it in every handshake; replicas of different IDs refuse each other. A
// cluster made again at the same addresses (its folders moved aside) is
// another cluster with another ID, so a node that kept an earlier one's
// folder can neither join it nor truncate its log.
//
// A new cluster's ID comes from its nodes' bootstrap nonces: each node of
// CLUSTER_NODES, started without raft state and without CLUSTER_JOIN, makes
// a random nonce (kept in its stable store), and bootstraps only once it
// has reached every other node of the list and found it waiting to
// bootstrap too (or bootstrapped from the same nonces): the ID is a hash of
// the list and of every nonce (NonceID), which each node computes alike with
// no further exchange (bootstrap.go). A node that joins (CLUSTER_JOIN) has
// no ID until the first member connects to it: it takes that member's. A
// cluster seeded from a backup, or recovered after a lost quorum, gets a new
// random ID: it is a new cluster.
type ID [16]byte

// IsZero reports an unknown ID: a node's before it bootstrapped or joined.
func (id ID) IsZero() bool { return id == ID{} }

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads an ID as String writes it.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%q is not a cluster ID (%d hex digits)", s, 2*len(id))
	}
	copy(id[:], b)
	return id, nil
}

// NewID is a random ID: a cluster seeded from a backup or recovered.
func NewID() ID {
	var id ID
	rand.Read(id[:])
	return id
}

// Nonce is a node's bootstrap nonce.
type Nonce [16]byte

func newNonce() Nonce {
	var n Nonce
	rand.Read(n[:])
	return n
}

func (n Nonce) String() string { return hex.EncodeToString(n[:]) }

func parseNonce(s string) (Nonce, bool) {
	var n Nonce
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(n) {
		return n, false
	}
	copy(n[:], b)
	return n, true
}

// NonceID is the ID of the cluster bootstrapped from nodes whose bootstrap
// nonces are nonces (one per node).
func NonceID(nodes map[int]string, nonces map[int]Nonce) ID {
	var b strings.Builder
	b.WriteString("tp0 cluster\n")
	b.WriteString(FormatNodes(nodes))
	ids := make([]int, 0, len(nonces))
	for id := range nonces {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "\n%d=%s", id, nonces[id])
	}
	sum := sha256.Sum256([]byte(b.String()))
	var id ID
	copy(id[:], sum[:])
	return id
}

// nodesHash names a CLUSTER_NODES list in a handshake: nodes that
// bootstrap together must have been started with the same list.
func nodesHash(nodes map[int]string) string {
	sum := sha256.Sum256([]byte(FormatNodes(nodes)))
	return hex.EncodeToString(sum[:6])
}

// Keys of raft's stable store.
var (
	keyClusterID = []byte("tp0_cluster_id")
	keyNonce     = []byte("tp0_bootstrap_nonce")
)

// storedID reads the cluster ID from raft's stable store (zero: none).
func storedID(s raft.StableStore) (ID, error) {
	var id ID
	b, err := storedBytes(s, keyClusterID, len(id))
	copy(id[:], b)
	return id, err
}

// storedNonce reads this node's bootstrap nonce (zero: none).
func storedNonce(s raft.StableStore) (Nonce, error) {
	var n Nonce
	b, err := storedBytes(s, keyNonce, len(n))
	copy(n[:], b)
	return n, err
}

func storedBytes(s raft.StableStore, key []byte, size int) ([]byte, error) {
	b, err := s.Get(key)
	switch {
	case err != nil && !notFound(err):
		return nil, err
	case len(b) == 0:
		return nil, nil
	case len(b) != size:
		return nil, fmt.Errorf("raft's stable store holds %s of %d bytes, want %d", key, len(b), size)
	}
	return b, nil
}

// identity is this node's cluster ID: set when it bootstraps, or learnt
// from the first member that connects to a joining node (adopt), and kept
// (persist) in raft's stable store and the bets store.
type identity struct {
	mu sync.Mutex
	id ID
	// joining: the node waits to be added, and takes the ID of the first
	// member that connects to it. A node that bootstraps never takes one.
	joining bool
	persist func(ID) error
}

func (i *identity) get() ID {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.id
}

// set records id as this node's (bootstrap).
func (i *identity) set(id ID) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.persist(id); err != nil {
		return fmt.Errorf("keeping cluster ID %s: %w", id, err)
	}
	i.id, i.joining = id, false
	return nil
}

// check compares a peer's ID with this node's: a joining node without one
// adopts it; a node that is to bootstrap has none yet and accepts nobody.
func (i *identity) check(peer ID) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case peer.IsZero():
		return fmt.Errorf("%w: the peer has no cluster ID (a node that has not bootstrapped or joined yet)", ErrPeerRefused)
	case i.id.IsZero() && i.joining:
		if err := i.persist(peer); err != nil {
			return fmt.Errorf("keeping cluster ID %s: %w", peer, err)
		}
		i.id, i.joining = peer, false
		return nil
	case i.id.IsZero():
		return fmt.Errorf("%w: this node has not bootstrapped yet: it waits for every node of its CLUSTER_NODES", ErrPeerRefused)
	case peer != i.id:
		return fmt.Errorf("%w: %w: the peer belongs to cluster %s, this node to %s", ErrPeerRefused, ErrClusterMismatch, peer, i.id)
	}
	return nil
}

// ErrOtherCluster means this node's files belong to another cluster than
// the one its raft folder, or its peers, do.
var ErrOtherCluster = errors.New("the node's files belong to another cluster")

// mismatched records that peer answered as a member of another cluster.
// Once a majority of this node's configuration does, this node's folder is
// the one out of place (a folder of an earlier cluster at these addresses,
// or of another cluster): it stops, saying what to do, rather than call
// elections nobody answers. The members of a live cluster, which hear it
// from that one node only, go on.
func (n *Node) mismatched(peer int, other ID) {
	count := n.mismatches.add(peer)
	if !n.majority(count) {
		return
	}
	err := fmt.Errorf("%w: this node's folder belongs to cluster %s, but the nodes at %d of its peers' addresses belong to cluster %s: a folder of an earlier cluster at these addresses? "+
		"Move DB_PATH and DB_PATH.raft aside and add this node to that cluster as a new member (CLUSTER_JOIN=true, server cluster add on its leader)",
		ErrOtherCluster, n.ident.get(), count, other)
	n.log.Criticalf("action: cluster_start | result: fail | nodo: %d | error: %s", n.cfg.ID, logformat.Value(err.Error()))
	n.stopFor(err)
}

// refusedAsNoMember records that peer, of this node's cluster, refused it
// as no member: once a majority of this node's configuration does, it was
// removed (a follower removed may never receive the entry that removed it:
// the leader stops replicating to it), and it stops.
func (n *Node) refusedAsNoMember(peer int) {
	if n.majority(n.outsiders.add(peer)) {
		n.stopFor(ErrRemoved)
	}
}

// majority reports whether count peers are a majority of this node's
// configuration (of two nodes or more: a lone node hears no peer).
func (n *Node) majority(count int) bool {
	ids := n.members.ids()
	return len(ids) >= 2 && count >= len(ids)/2+1
}

// verdicts are the peers that said one thing of this node; the node acts
// on it once a majority of its configuration has.
type verdicts struct {
	mu    sync.Mutex
	peers map[int]bool
}

// add records peer's verdict and returns how many peers have given it.
func (v *verdicts) add(peer int) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.peers == nil {
		v.peers = map[int]bool{}
	}
	v.peers[peer] = true
	return len(v.peers)
}
