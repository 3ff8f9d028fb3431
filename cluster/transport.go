package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// transport is raft's network transport, watched: it records, for each
// peer, when it last answered an AppendEntries (heartbeats included) and
// the last log index it reported, which is how a leader sees its
// followers (raft v1.7.3 exposes neither).
type transport struct {
	*raft.NetworkTransport

	mu    sync.Mutex
	peers map[raft.ServerID]PeerSeen
}

// PeerSeen is what the leader last heard from a peer.
type PeerSeen struct {
	Contact  time.Time // its last answer to an AppendEntries
	LastLog  uint64    // the last log index it reported then
	Failures int       // failed calls since its last answer
}

func newTransport(nt *raft.NetworkTransport) *transport {
	return &transport{NetworkTransport: nt, peers: map[raft.ServerID]PeerSeen{}}
}

func (t *transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	t.mu.Lock()
	p := t.peers[id]
	if err != nil {
		p.Failures++
	} else {
		p = PeerSeen{Contact: time.Now(), LastLog: resp.LastLog}
	}
	t.peers[id] = p
	t.mu.Unlock()
	return err
}

// seen returns what was last heard from peer id.
func (t *transport) seen(id raft.ServerID) (PeerSeen, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[id]
	return p, ok
}
