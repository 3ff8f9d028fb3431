package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Membership: who belongs to the cluster, and changes to it through the
// leader. A new node joins as a non-voter, after the leader checked that it
// answers the replicas' handshake at its address as that node, and the
// leader promotes it to a voter once it has caught up (promote.go). No
// change may leave the voters unable to elect a leader with the nodes that
// answer now: a removal that would is refused, as etcd's strict
// reconfiguration check and raft-autopilot's reconciler do. A lost machine
// is replaced by removing its id and adding a new node (a new id) at its
// address.

// NotLeaderError refuses a change sent to a node that does not lead; Leader
// is the leader's "id=address" and LeaderAdmin its admin listener's URL,
// when known.
type NotLeaderError struct{ Leader, LeaderAdmin string }

func (e *NotLeaderError) Error() string {
	switch {
	case e.Leader == "":
		return "this node does not lead the cluster, and no leader is known: retry in a moment"
	case e.LeaderAdmin == "":
		return "this node does not lead the cluster: send it to the leader, node " + e.Leader
	}
	return "this node does not lead the cluster: send it to the leader, node " + e.Leader + " (admin " + e.LeaderAdmin + ")"
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// ErrMember refuses a membership change: a node that is not a member, an
// address that is another member's, a live voter's address changed without
// asking for a re-address, a node that does not answer as the one named,
// or a change that would leave the voters without a quorum of nodes that
// answer.
var ErrMember = errors.New("membership change refused")

// members is this node's view of who belongs to its cluster: raft's latest
// configuration once it has one, CLUSTER_NODES before (a node that joins),
// and the servers this node is adding, so that it can dial them as soon as
// raft does.
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

// ids are the members' ids, sorted.
func (m *members) ids() []int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return sortedIDs(m.view())
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

// peers is what this node's peers said of themselves in their handshakes.
type peers struct {
	mu sync.Mutex
	m  map[int]info
}

func newPeers() *peers { return &peers{m: map[int]info{}} }

func (p *peers) heard(id int, i info) {
	p.mu.Lock()
	p.m[id] = i
	p.mu.Unlock()
}

// about returns what peer id said of itself last (ok false: nothing yet).
func (p *peers) about(id int) (info, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.m[id]
	return i, ok
}

// Server is a member of the cluster as this node sees it.
type Server struct {
	ID       int    `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // voter, nonvoter
	// Role is leader, follower, or unreachable: a member the leader has not
	// heard from within the election timeout ("" when this node does not
	// know: it does not lead).
	Role string `json:"role"`
	// The leader's view of a follower (on the leader only): how long ago
	// it last answered (LastContactMs -1: never), and the last log index it
	// reported then. A node's own row carries its applied index.
	LastContactMs int64  `json:"last_contact_ms"`
	LastLog       uint64 `json:"last_log_index"`
	Applied       uint64 `json:"applied_index,omitempty"`
	Lag           uint64 `json:"lag_entries"`
	Failures      int    `json:"failures"` // the leader's calls to it that failed since its last answer
	// CaughtUp: within promoteLag entries of the leader's log, and heard
	// from within the election timeout (a non-voter is promoted once it has
	// been so for promoteAfter).
	CaughtUp bool `json:"caught_up"`
	// Version is the entry format it reads (0: not known here); Admin its
	// admin listener's URL, when it said.
	Version int    `json:"version,omitempty"`
	Admin   string `json:"admin,omitempty"`
}

// Servers returns the cluster's servers, by id.
func (n *Node) Servers() ([]Server, error) {
	cfgServers, err := n.configuration()
	if err != nil {
		return nil, err
	}
	leading := n.raft.State() == raft.Leader
	_, leaderID := n.raft.LeaderWithID()
	last := n.raft.LastIndex()
	applied, _ := n.fsm.store().AppliedIndex()
	var out []Server
	for _, s := range cfgServers {
		id, err := parseServerID(s.ID)
		if err != nil {
			continue
		}
		sv := Server{ID: id, Address: string(s.Address), Suffrage: suffrageName(s.Suffrage), LastContactMs: -1}
		switch {
		case id == n.cfg.ID:
			sv.LastContactMs, sv.LastLog, sv.Applied, sv.CaughtUp = 0, last, applied, true
			sv.Version, sv.Admin = EntryFormat, n.cfg.AdminURL
		case leading:
			if p, ok := n.trans.seen(s.ID); ok {
				sv.Failures = p.Failures
				if !p.Contact.IsZero() {
					sv.LastContactMs, sv.LastLog = time.Since(p.Contact).Milliseconds(), p.LastLog
				}
			}
			sv.CaughtUp = n.caughtUp(s.ID)
		}
		if i, ok := n.peers.about(id); ok && id != n.cfg.ID {
			sv.Version, sv.Admin = i.version, i.admin
		}
		switch {
		case s.ID == leaderID:
			sv.Role = "leader"
		case leading && !n.heard(s.ID):
			sv.Role = "unreachable"
		case leaderID != "":
			sv.Role = "follower"
		}
		if sv.LastLog < last && sv.LastContactMs >= 0 {
			sv.Lag = last - sv.LastLog
		}
		out = append(out, sv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func suffrageName(s raft.ServerSuffrage) string {
	if s == raft.Voter {
		return "voter"
	}
	return "nonvoter"
}

// heard reports whether the leader heard from server id within the
// election timeout (itself: always).
func (n *Node) heard(id raft.ServerID) bool {
	if id == serverID(n.cfg.ID) {
		return true
	}
	p, ok := n.trans.seen(id)
	return ok && !p.Contact.IsZero() && time.Since(p.Contact) <= n.cfg.Timeouts.Election
}

// caughtUp reports whether server id is within promoteLag entries of the
// leader's log and was heard from within the election timeout.
func (n *Node) caughtUp(id raft.ServerID) bool {
	if id == serverID(n.cfg.ID) {
		return true
	}
	p, ok := n.trans.seen(id)
	return ok && n.heard(id) && p.LastLog+promoteLag >= n.raft.LastIndex()
}

// notLeader is the refusal of a change on a node that does not lead.
func (n *Node) notLeader() error {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return &NotLeaderError{}
	}
	e := &NotLeaderError{Leader: string(id) + "=" + string(addr)}
	if lid, err := parseServerID(id); err == nil {
		if i, ok := n.peers.about(lid); ok {
			e.LeaderAdmin = i.admin
		}
	}
	return e
}

// LeaderAdmin is the admin URL of the node that leads, when known.
func (n *Node) LeaderAdmin() string {
	var nl *NotLeaderError
	if errors.As(n.notLeader(), &nl) {
		return nl.LeaderAdmin
	}
	return ""
}

// AddServer adds node id at addr as a non-voter, which the leader promotes
// once it has caught up. The node must answer the replicas' handshake at
// addr as node id, waiting to be added (started with CLUSTER_JOIN=true), and
// read the cluster's entry format. An id that is a member at another
// address is refused unless readdress: then the member moves to addr,
// keeping its suffrage, once it answers there as that node. It returns the
// node's suffrage after the change.
func (n *Node) AddServer(id int, addr string, readdress bool) (string, error) {
	if n.raft.State() != raft.Leader {
		return "", n.notLeader()
	}
	if id < 1 || id > MaxNodeID {
		return "", fmt.Errorf("%w: node id %d is not between 1 and %d", ErrMember, id, MaxNodeID)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not host:port", ErrMember, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
		return "", fmt.Errorf("%w: %s does not resolve: %v", ErrMember, host, err)
	}
	servers, err := n.configuration()
	if err != nil {
		return "", err
	}
	var current *raft.Server
	for i, s := range servers {
		switch {
		case s.ID == serverID(id):
			current = &servers[i]
		case string(s.Address) == addr:
			return "", fmt.Errorf("%w: %s is node %s's address: remove node %s first", ErrMember, addr, s.ID, s.ID)
		}
	}
	switch {
	case current != nil && string(current.Address) == addr:
		return suffrageName(current.Suffrage), nil // a member there already
	case current != nil && !readdress:
		return "", fmt.Errorf("%w: node %d is a member at %s (%s): to move it to %s, ask for a re-address (server cluster add %d %s --readdress); to replace a lost machine, remove node %d and add a new id",
			ErrMember, id, current.Address, suffrageName(current.Suffrage), addr, id, addr, id)
	case current == nil && readdress:
		return "", fmt.Errorf("%w: node %d is not a member: there is nothing to re-address", ErrMember, id)
	}
	if err := n.checkJoiner(id, addr, current != nil); err != nil {
		return "", err
	}
	n.members.add(id, addr)
	if current != nil && current.Suffrage == raft.Voter {
		return "voter", n.change(n.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, n.cfg.Timeouts.Apply))
	}
	return "nonvoter", n.change(n.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, n.cfg.Timeouts.Apply))
}

// checkJoiner probes node id at addr: it must answer as node id, waiting to
// be added (or, moved, as this cluster's member), reading the cluster's
// entry format.
func (n *Node) checkJoiner(id int, addr string, moving bool) error {
	r, i, err := n.stream.probe(addr, id, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w: node %d at %s does not answer the replicas' handshake: %v (start it first, with CLUSTER_JOIN=true)", ErrMember, id, addr, err)
	}
	own := n.ident.get()
	switch {
	case r.node != id:
		return fmt.Errorf("%w: %s answers as node %d, not node %d", ErrMember, addr, r.node, id)
	case !r.cluster.IsZero() && r.cluster != own:
		return fmt.Errorf("%w: node %d at %s belongs to another cluster (%s): start it with an empty DB_PATH and CLUSTER_JOIN=true", ErrMember, id, addr, r.cluster)
	case moving && r.cluster != own:
		return fmt.Errorf("%w: %s does not answer as node %d of this cluster (it says %s)", ErrMember, addr, id, i.state)
	case !moving && i.state == stateFresh:
		return fmt.Errorf("%w: node %d at %s waits to bootstrap a new cluster: restart it with CLUSTER_JOIN=true", ErrMember, id, addr)
	case !moving && i.state == stateMember:
		return fmt.Errorf("%w: node %d at %s already holds this cluster's state (a node once removed?): start it with an empty DB_PATH and CLUSTER_JOIN=true under a new id", ErrMember, id, addr)
	}
	if v := n.clusterVersion(); i.version < v {
		return fmt.Errorf("%w: node %d at %s reads entry format %d, the cluster writes %d: run this version on it", ErrMember, id, addr, i.version, v)
	}
	return nil
}

// RemoveServer removes node id from the cluster. Removing the leader makes
// it step down once the change is committed. A voter's removal is refused
// when the voters left could not elect a leader with the nodes that answer
// now.
func (n *Node) RemoveServer(id int) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(servers, func(s raft.Server) bool { return s.ID == serverID(id) })
	if i < 0 {
		return fmt.Errorf("%w: node %d is not a member", ErrMember, id)
	}
	if servers[i].Suffrage == raft.Voter {
		if err := n.quorumAfter(servers, serverID(id), ""); err != nil {
			return fmt.Errorf("%w: removing node %d %w", ErrMember, id, err)
		}
	}
	return n.change(n.raft.RemoveServer(serverID(id), 0, n.cfg.Timeouts.Apply))
}

// quorumAfter checks that the voters of servers without gone and with
// added could elect a leader with the nodes this leader hears now.
func (n *Node) quorumAfter(servers []raft.Server, gone, added raft.ServerID) error {
	var voters, healthy, silent []string
	for _, s := range servers {
		if s.Suffrage != raft.Voter && s.ID != added || s.ID == gone {
			continue
		}
		voters = append(voters, string(s.ID))
		if s.ID == added || n.heard(s.ID) {
			healthy = append(healthy, string(s.ID))
		} else {
			silent = append(silent, string(s.ID))
		}
	}
	if len(voters) == 0 {
		return errors.New("would leave no voter")
	}
	if quorum := len(voters)/2 + 1; len(healthy) < quorum {
		return fmt.Errorf("would leave %d voters of which %d answer now (nodes %s; not %s): they need %d to elect a leader. Bring the silent ones back first (or, if they are lost for good, recover: docs/cluster.md)",
			len(voters), len(healthy), strings.Join(healthy, ", "), strings.Join(silent, ", "), quorum)
	}
	return nil
}

// change waits for a configuration change to be committed.
func (n *Node) change(f raft.IndexFuture) error {
	err := wait(f, 2*n.cfg.Timeouts.Apply)
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
		return n.notLeader()
	}
	if err != nil {
		return err
	}
	if servers, err := n.configuration(); err == nil {
		n.members.set(servers)
	}
	return nil
}

func sortedIDs(m map[int]string) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
