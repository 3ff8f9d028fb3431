package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// What the leader does on its own, every leaderTick while it serves:
//
//   - promote a non-voter to voter once it has stayed caught up (within
//     promoteLag entries of the leader's log, heard from within the election
//     timeout) for promoteAfter, and the voters with it could elect a
//     leader with the nodes that answer;
//   - raise the cluster's version (a Version entry) once every member said,
//     in its handshake, that it reads this version's entry format;
//   - append a checkpoint (checkpoint) every checkpointEvery entries, and
//     when a round is over.
const (
	leaderTick = 250 * time.Millisecond
	// promoteLag is one AppendEntries batch (raft's MaxAppendEntries): a
	// node that close replicates the leader's writes as they come.
	promoteLag = 256
	// promoteAfter is about seven heartbeat intervals: long enough to see
	// the node answer steadily (not a burst after a restart), short enough
	// that a round does not wait on it.
	promoteAfter = 2 * time.Second
	// checkpointEvery entries (about 940,000 bets at 230 a batch, 2 to 5 s
	// of a busy round) bound how long a replica that diverged goes
	// unnoticed; each checkpoint holds back writes for a barrier and reads
	// every agency's count and digest (at most 10,000 keys), on the leader
	// and then on each replica as it applies the entry.
	checkpointEvery = 4096
)

func (n *Node) leaderLoop() {
	defer n.done.Done()
	t := time.NewTicker(leaderTick)
	defer t.Stop()
	since := map[raft.ServerID]time.Time{}
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if n.raft.State() != raft.Leader || !n.serving.Load() {
			clear(since)
			continue
		}
		servers, err := n.configuration()
		if err != nil {
			continue
		}
		n.promote(servers, since)
		n.raiseVersion(servers)
		if n.checkpointDue() {
			if err := n.checkpoint(); err != nil && !errors.Is(err, ErrUnknownOutcome) {
				n.log.Warningf("action: cluster_integrity | result: in_progress | nodo: %d | aviso: %s", n.cfg.ID, logformat.Value("a checkpoint could not be appended: "+err.Error()))
			}
		}
	}
}

// promote promotes the non-voters that have stayed caught up for
// promoteAfter (since: when each was first seen caught up).
func (n *Node) promote(servers []raft.Server, since map[raft.ServerID]time.Time) {
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			delete(since, s.ID)
			continue
		}
		if !n.caughtUp(s.ID) {
			delete(since, s.ID)
			continue
		}
		if since[s.ID].IsZero() {
			since[s.ID] = time.Now()
		}
		if time.Since(since[s.ID]) < promoteAfter {
			continue
		}
		if err := n.quorumAfter(servers, "", s.ID); err != nil {
			continue // it waits: the voters with it could not elect a leader now
		}
		err := wait(n.raft.AddVoter(s.ID, s.Address, 0, n.cfg.Timeouts.Apply), 2*n.cfg.Timeouts.Apply)
		if err != nil {
			n.log.Warningf("action: cluster_member | result: fail | nodo: %d | promover: %s | error: %s", n.cfg.ID, s.ID, logformat.Value(err.Error()))
			continue
		}
		delete(since, s.ID)
		n.log.Infof("action: cluster_member | result: success | nodo: %d | promovido: %s | direccion: %s", n.cfg.ID, s.ID, logformat.Value(string(s.Address)))
	}
}

// clusterVersion is the cluster's version in this replica's store.
func (n *Node) clusterVersion() int {
	v, err := n.fsm.store().ClusterVersion()
	if err != nil {
		return 1
	}
	return v
}

// raiseVersion appends a Version entry once every member reads this
// version's entry format.
func (n *Node) raiseVersion(servers []raft.Server) {
	if n.clusterVersion() >= EntryFormat {
		return
	}
	for _, s := range servers {
		id, err := parseServerID(s.ID)
		if err != nil {
			return
		}
		if i, ok := n.peers.about(id); id != n.cfg.ID && (!ok || i.version < EntryFormat) {
			return
		}
	}
	if _, err := n.apply(store.Command{Kind: store.CmdVersion, Version: EntryFormat}, false); err != nil {
		return
	}
	n.log.Infof("action: cluster_version | result: success | nodo: %d | version: %d", n.cfg.ID, EntryFormat)
}

// checkpointDue reports whether the leader should append a checkpoint:
// checkpointEvery entries after the last, or a round over since.
func (n *Node) checkpointDue() bool {
	if n.clusterVersion() < EntryFormat {
		return false
	}
	st := n.fsm.store()
	applied, err := st.AppliedIndex()
	if err != nil {
		return false
	}
	last, err := st.LastCheckpoint()
	if err != nil {
		return false
	}
	return applied > last && (applied-last >= checkpointEvery || n.roundEnded.Swap(false))
}

// checkpoint appends a checkpoint: the leader's Summary of its store at the
// last index it applied, with no other proposal in between (every write
// waits, for a barrier and the summary).
func (n *Node) checkpoint() error {
	n.proposing.Lock()
	defer n.proposing.Unlock()
	if err := wait(n.raft.Barrier(n.cfg.Timeouts.Apply), n.cfg.Timeouts.Apply); err != nil {
		return err
	}
	sum, err := n.fsm.store().Summary()
	if err != nil {
		return err
	}
	data, err := encode(store.Command{Kind: store.CmdCheckpoint, Summary: &sum})
	if err != nil {
		return err
	}
	_, err = n.outcome(n.raft.Apply(data, n.cfg.Timeouts.Apply), time.Now())
	return err
}

// IntegrityStatus is a replica's record of the cross-replica checks of its
// store (checkpoints).
type IntegrityStatus struct {
	// Checked is the log index of the last checkpoint its store was held
	// to and matched (0: none yet); Checks how many matched since it started.
	Checked uint64 `json:"checked_index"`
	Checks  uint64 `json:"checks"`
	// Diverged says the last time its store differed from the leader's:
	// in this run (it stops), or before (it was rebuilt since).
	Diverged string `json:"diverged,omitempty"`
}

// integrityName is the file in the raft folder that records a divergence.
const integrityName = "diverged.json"

// integrity is a replica's integrity record (the node's).
type integrity struct {
	checked, checks atomic.Uint64
	diverged        atomic.Pointer[string]
}

// Integrity returns this replica's integrity record.
func (n *Node) Integrity() IntegrityStatus {
	st := IntegrityStatus{Checked: n.integrity.checked.Load(), Checks: n.integrity.checks.Load()}
	if d := n.integrity.diverged.Load(); d != nil {
		st.Diverged = *d
	}
	return st
}

// checkpointed records an entry's check of the store (the FSM's).
func (n *Node) checkpointed(index uint64) {
	n.integrity.checked.Store(index)
	n.integrity.checks.Add(1)
}

// diverged records that this replica's store differed from the leader's:
// one cluster_integrity line, and a file in the raft folder that the next
// start (which rebuilds the store) reports.
func (n *Node) diverged(err error) {
	what := fmt.Sprintf("%s: %v", time.Now().UTC().Format(time.RFC3339), err)
	n.integrity.diverged.Store(&what)
	n.log.Criticalf("action: cluster_integrity | result: fail | nodo: %d | error: %s | sugerencia: %s", n.cfg.ID, logformat.Value(err.Error()),
		logformat.Value("this node stops; at its next start its store is rebuilt from the snapshot and the log"))
	if b, jerr := json.Marshal(map[string]string{"diverged": what}); jerr == nil {
		os.WriteFile(filepath.Join(n.dir, integrityName), b, 0o600)
	}
}

// readDivergence reads what an earlier run recorded of a divergence.
func (n *Node) readDivergence() {
	b, err := os.ReadFile(filepath.Join(n.dir, integrityName))
	if err != nil {
		return
	}
	var m map[string]string
	if json.Unmarshal(b, &m) == nil && m["diverged"] != "" {
		what := m["diverged"] + " (rebuilt since)"
		n.integrity.diverged.Store(&what)
	}
}
