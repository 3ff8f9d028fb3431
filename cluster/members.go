package cluster

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// Membership, for operators: the servers of the cluster, and changes to
// it through the leader (raft's AddVoter and RemoveServer). A lost machine
// is replaced by removing its id and adding a new node at its new address,
// which starts empty with Join and catches up from a snapshot and the log.

// NotLeaderError refuses a change sent to a node that does not lead; Leader
// is the leader's "id=address" when known.
type NotLeaderError struct{ Leader string }

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "this node does not lead the cluster, and no leader is known: retry in a moment"
	}
	return "this node does not lead the cluster: send it to the leader, node " + e.Leader
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// ErrMember refuses a membership change that makes no sense (a node that is
// not a member, an id already at another address).
var ErrMember = errors.New("membership change refused")

// Server is a member of the cluster as this node sees it.
type Server struct {
	ID       int    `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // voter, nonvoter
	Role     string `json:"role"`     // leader, follower; "" when this node does not know
	// The leader's view of a follower (on the leader only): how long ago
	// it last answered (LastContactMs -1: never), and the last log index it
	// reported then. A node's own row carries its applied index.
	LastContactMs int64  `json:"last_contact_ms"`
	LastLog       uint64 `json:"last_log_index"`
	Applied       uint64 `json:"applied_index,omitempty"`
	Lag           uint64 `json:"lag_entries"`
	Failures      int    `json:"failures"` // the leader's calls to it that failed since its last answer
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
		sv := Server{ID: id, Address: string(s.Address), Suffrage: map[raft.ServerSuffrage]string{raft.Voter: "voter", raft.Nonvoter: "nonvoter"}[s.Suffrage],
			LastContactMs: -1}
		if s.ID == leaderID {
			sv.Role = "leader"
		} else if leaderID != "" && s.Suffrage == raft.Voter {
			sv.Role = "follower"
		}
		switch {
		case id == n.cfg.ID:
			sv.LastContactMs, sv.LastLog, sv.Applied = 0, last, applied
		case leading:
			if p, ok := n.trans.seen(s.ID); ok {
				sv.Failures = p.Failures
				if !p.Contact.IsZero() {
					sv.LastContactMs, sv.LastLog = time.Since(p.Contact).Milliseconds(), p.LastLog
				}
			}
		}
		if sv.LastLog < last && sv.LastContactMs >= 0 {
			sv.Lag = last - sv.LastLog
		}
		out = append(out, sv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// notLeader is the refusal of a change on a node that does not lead.
func (n *Node) notLeader() error {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return &NotLeaderError{}
	}
	return &NotLeaderError{Leader: string(id) + "=" + string(addr)}
}

// AddVoter adds node id at addr as a voter. The node starts with Join (no
// raft state, its own address in its CLUSTER_NODES) and catches up from a
// snapshot and the log.
func (n *Node) AddVoter(id int, addr string) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	if id < 1 || id > MaxNodeID {
		return fmt.Errorf("%w: node id %d is not between 1 and %d", ErrMember, id, MaxNodeID)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: %q is not host:port", ErrMember, addr)
	}
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if string(s.Address) == addr && s.ID != serverID(id) {
			return fmt.Errorf("%w: %s is node %s's address: remove it first", ErrMember, addr, s.ID)
		}
		if s.ID == serverID(id) && string(s.Address) == addr {
			return nil // already a member there
		}
	}
	n.members.add(id, addr)
	return n.change(n.raft.AddVoter(serverID(id), raft.ServerAddress(addr), 0, n.cfg.Timeouts.Apply))
}

// RemoveServer removes node id from the cluster. Removing the leader makes
// it step down once the change is committed.
func (n *Node) RemoveServer(id int) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	servers, err := n.configuration()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == serverID(id) }) {
		return fmt.Errorf("%w: node %d is not a member", ErrMember, id)
	}
	return n.change(n.raft.RemoveServer(serverID(id), 0, n.cfg.Timeouts.Apply))
}

// change waits for a configuration change to be committed.
func (n *Node) change(f raft.IndexFuture) error {
	err := n.answers.wait(f, 2*n.cfg.Timeouts.Apply)
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

func sortInts(s []int) []int {
	sort.Ints(s)
	return s
}
