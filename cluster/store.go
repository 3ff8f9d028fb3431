package cluster

import (
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// The node as the central's store: writes go through the log, reads are
// the local replica's, and the node's view of the cluster for operators.

// Append stores a batch through the log (see store.Store.Append).
func (n *Node) Append(agency int, first uint64, bets lottery.Bets) (store.Receipt, error) {
	a, err := n.apply(store.Command{Kind: store.CmdAppend, Agency: agency, First: first, Bets: bets}, false)
	if err != nil {
		return store.Receipt{}, err
	}
	return a.Receipt, a.Err
}

// AppendAsync hands a batch to the log without waiting for it: a caller's
// batches are appended in the order of its calls, so a session can have
// several in flight; wait returns what Append would have.
func (n *Node) AppendAsync(agency int, first uint64, bets lottery.Bets) (wait func() (store.Receipt, error)) {
	w := n.submit(store.Command{Kind: store.CmdAppend, Agency: agency, First: first, Bets: bets}, false)
	return func() (store.Receipt, error) {
		a, err := w()
		if err != nil {
			return store.Receipt{}, err
		}
		return a.Receipt, a.Err
	}
}

// Finish records agency's finish through the log; the finish that
// completes the set of agencies runs the draw in the same entry.
func (n *Node) Finish(agency int, total uint64) error {
	a, err := n.apply(store.Command{Kind: store.CmdFinish, Agency: agency, Total: total, At: n.cfg.Now()}, false)
	if err != nil {
		return err
	}
	return a.Err
}

// Delivered records the delivery of agency's winners through the log.
func (n *Node) Delivered(agency int) error {
	a, err := n.apply(store.Command{Kind: store.CmdDelivered, Agency: agency, At: n.cfg.Now()}, false)
	if err != nil {
		return err
	}
	return a.Err
}

// NewRound ends the round, which must be over (store.ErrRoundOpen
// otherwise), and begins the next with agencies, through the log: every
// replica archives the round's file and begins the next at the same entry.
func (n *Node) NewRound(agencies int) error {
	a, err := n.apply(store.Command{Kind: store.CmdNewRound, Agencies: agencies, At: n.cfg.Now()}, false)
	if err != nil {
		return err
	}
	return a.Err
}

// The reads are the local replica's: on the leader, after Barrier, they see
// every committed entry.

func (n *Node) Committed(agency int) (uint64, bool, error)   { return n.fsm.store().Committed(agency) }
func (n *Node) Agency(agency int) (store.AgencyState, error) { return n.fsm.store().Agency(agency) }
func (n *Node) Round() (store.Round, error)                  { return n.fsm.store().Round() }
func (n *Node) Commits() uint64                              { return n.fsm.store().Commits() }
func (n *Node) ScanBets(fn func(*lottery.Bet) error) error   { return n.fsm.store().ScanBets(fn) }

// Verify holds this replica's store to itself (store.Store.Verify): the
// leader runs it before it announces the winners of the round.
func (n *Node) Verify() (store.Report, error) { return n.fsm.store().Verify() }

// Summary, Record and SetRecord are the local replica's (store.Store's):
// the record is written by the node that led when the round was drawn, in
// its own store, signed with its own key.
func (n *Node) Summary() (store.Summary, error) { return n.fsm.store().Summary() }
func (n *Node) Record() ([]byte, error)         { return n.fsm.store().Record() }
func (n *Node) SetRecord(b []byte) error        { return n.fsm.store().SetRecord(b) }

// Backup writes a consistent copy of this replica's store to w (see
// store.Store.Backup): on the leader, every committed entry.
func (n *Node) Backup(w io.Writer) (int64, error) { return n.fsm.store().Backup(w) }

// Handoff gives raft a replica's connection (its Marker already read) after
// the handshake; certID is the replica the TLS client certificate names (0
// in plaintext). It returns the peer's id (0 when unknown) and why the
// connection is refused (the caller closes it then).
func (n *Node) Handoff(conn net.Conn, certID int) (int, error) { return n.stream.handoff(conn, certID) }

// Snapshot takes a snapshot now and compacts the log behind it (raft does
// so by itself, see Snapshots).
func (n *Node) Snapshot() error { return wait(n.raft.Snapshot(), time.Minute) }

// Status is a node's view of the cluster, for operators.
type Status struct {
	Node     int    `json:"node"`
	Cluster  string `json:"cluster_id"`
	Role     string `json:"role"`
	Term     uint64 `json:"term"`
	Leader   string `json:"leader"`
	Commit   uint64 `json:"commit_index"`
	Applied  uint64 `json:"applied_index"` // the last entry applied to this replica's store
	LastLog  uint64 `json:"last_log_index"`
	Serving  bool   `json:"serving"`
	Replicas []int  `json:"replicas"`
	// Version is the cluster's version in this replica's log (the entry
	// format every member reads); Integrity its cross-replica checks.
	Version   int             `json:"cluster_version"`
	Integrity IntegrityStatus `json:"integrity"`
}

var roles = map[raft.RaftState]string{raft.Leader: "leader", raft.Follower: "follower", raft.Candidate: "candidate", raft.Shutdown: "shutdown"}

// Status returns the node's status.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	applied, _ := n.fsm.store().AppliedIndex()
	leader := string(addr)
	if id != "" {
		leader = string(id) + "=" + leader
	}
	replicas := n.members.ids()
	return Status{Node: n.cfg.ID, Cluster: n.ident.get().String(), Role: roles[n.raft.State()],
		Term: n.raft.CurrentTerm(), Leader: leader, Commit: n.raft.CommitIndex(), Applied: applied,
		LastLog: n.raft.LastIndex(), Serving: n.serving.Load(), Replicas: replicas,
		Version: n.clusterVersion(), Integrity: n.Integrity()}
}
