package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The replicas' handshake is the first exchange on a replica's connection,
// right after its Marker (inside TLS when TLS is on), before raft speaks:
//
//	hello (dialer)    version u8 = 1 | cluster ID [16] | from u32 | to u32
//	reply (acceptor)  status u8 (0 accepted, 1 refused) | cluster ID [16] | node u32 | reason: len u8 + UTF-8
//
// The acceptor takes the connection only from a member of its cluster (its
// raft configuration, or CLUSTER_NODES until it has one) that names this
// node as the one it dialled, carries the same cluster ID, and, over TLS,
// holds that member's certificate; the dialer takes it only from the node it
// meant, of its own cluster. Every raft message travels on a connection that
// passed both checks. Both sides bound the exchange by handshakeTimeout, so
// a connection that only sent the Marker cannot hold a slot.
const (
	handshakeVersion = 1
	helloSize        = 1 + len(ID{}) + 4 + 4
	replyFixed       = 1 + len(ID{}) + 4 + 1
	handshakeTimeout = 5 * time.Second
)

// Handshake errors.
var (
	// ErrPeerRefused means a replica's connection was refused: another
	// cluster, a node that is not a member, the wrong node, or a
	// certificate that names another replica.
	ErrPeerRefused = errors.New("replica connection refused")
	// ErrClusterMismatch means the two ends belong to different clusters.
	ErrClusterMismatch = errors.New("cluster ID mismatch")
)

type hello struct {
	cluster  ID
	from, to int
}

func writeHello(w io.Writer, h hello) error {
	b := make([]byte, 0, helloSize)
	b = append(b, handshakeVersion)
	b = append(b, h.cluster[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.from))
	b = binary.BigEndian.AppendUint32(b, uint32(h.to))
	_, err := w.Write(b)
	return err
}

func readHello(r io.Reader) (hello, error) {
	var b [helloSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("%w: reading the replica's hello: %w", ErrPeerRefused, err)
	}
	if b[0] != handshakeVersion {
		return hello{}, fmt.Errorf("%w: handshake version %d, this node speaks %d", ErrPeerRefused, b[0], handshakeVersion)
	}
	var h hello
	copy(h.cluster[:], b[1:17])
	h.from, h.to = int(binary.BigEndian.Uint32(b[17:])), int(binary.BigEndian.Uint32(b[21:]))
	return h, nil
}

type reply struct {
	ok      bool
	cluster ID
	node    int
	reason  string
}

func writeReply(w io.Writer, r reply) error {
	reason := r.reason
	if len(reason) > 255 {
		reason = reason[:255]
	}
	b := make([]byte, 0, replyFixed+len(reason))
	status := byte(1)
	if r.ok {
		status = 0
	}
	b = append(b, status)
	b = append(b, r.cluster[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(r.node))
	b = append(b, byte(len(reason)))
	b = append(b, reason...)
	_, err := w.Write(b)
	return err
}

func readReply(r io.Reader) (reply, error) {
	var b [replyFixed]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return reply{}, fmt.Errorf("%w: reading the peer's reply: %w", ErrPeerRefused, err)
	}
	if b[0] > 1 {
		return reply{}, fmt.Errorf("%w: reply status %d", ErrPeerRefused, b[0])
	}
	rp := reply{ok: b[0] == 0, node: int(binary.BigEndian.Uint32(b[17:]))}
	copy(rp.cluster[:], b[1:17])
	reason := make([]byte, b[replyFixed-1])
	if _, err := io.ReadFull(r, reason); err != nil {
		return reply{}, fmt.Errorf("%w: reading the peer's reply: %w", ErrPeerRefused, err)
	}
	rp.reason = string(reason)
	return rp, nil
}

// identity is this node's cluster ID, which a joining node learns from the
// first member that connects (adopt) and keeps (persist).
type identity struct {
	mu      sync.Mutex
	id      ID
	persist func(ID) error
}

func (i *identity) get() ID {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.id
}

// check compares a peer's ID with this node's, adopting it when this node
// has none yet.
func (i *identity) check(peer ID) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case peer.IsZero():
		return fmt.Errorf("%w: the peer has no cluster ID (a node that has not joined yet)", ErrPeerRefused)
	case i.id.IsZero():
		if err := i.persist(peer); err != nil {
			return fmt.Errorf("keeping cluster ID %s: %w", peer, err)
		}
		i.id = peer
		return nil
	case peer != i.id:
		return fmt.Errorf("%w: %w: the peer belongs to cluster %s, this node to %s", ErrPeerRefused, ErrClusterMismatch, peer, i.id)
	}
	return nil
}

// members is this node's view of who belongs to its cluster: raft's latest
// configuration once it has one, CLUSTER_NODES before (a node that joins),
// and the servers this node is adding (AddVoter), so that it can dial them
// as soon as raft does.
type members struct {
	boot map[int]string

	mu     sync.RWMutex
	live   map[int]string
	adding map[int]string
}

func newMembers(boot map[int]string) *members {
	return &members{boot: boot, live: map[int]string{}, adding: map[int]string{}}
}

// set records raft's configuration.
func (m *members) set(servers []raft.Server) {
	live := make(map[int]string, len(servers))
	for _, s := range servers {
		if id, err := parseServerID(s.ID); err == nil {
			live[id] = string(s.Address)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live = live
	for id, addr := range m.adding {
		if live[id] == addr {
			delete(m.adding, id)
		}
	}
}

func (m *members) add(id int, addr string) {
	m.mu.Lock()
	m.adding[id] = addr
	m.mu.Unlock()
}

func (m *members) view() map[int]string {
	if len(m.live) > 0 {
		return m.live
	}
	return m.boot
}

// isMember reports whether node id belongs to the cluster.
func (m *members) isMember(id int) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.view()[id]
	if !ok {
		_, ok = m.adding[id]
	}
	return ok
}

// at returns the id of the member at addr.
func (m *members) at(addr string) (int, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, set := range []map[int]string{m.adding, m.view()} {
		for id, a := range set {
			if a == addr {
				return id, true
			}
		}
	}
	return 0, false
}
