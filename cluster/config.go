package cluster

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// Config configures a node.
type Config struct {
	// ID is this node's id, a key of Nodes.
	ID int
	// Nodes are the cluster as the operator means it (CLUSTER_NODES): every
	// node's id and address, the agency-facing host:port, which carries the
	// replicas' traffic too. A node without raft state bootstraps the
	// cluster from it (unless Join); once a cluster runs, its live
	// membership is raft's (AddVoter, RemoveServer), and Nodes gives this
	// node its own address and, until it has a configuration of its own,
	// the peers it accepts.
	Nodes map[int]string
	// Join makes a node without raft state wait to be added by the
	// cluster's leader (AddVoter) instead of bootstrapping one.
	Join bool
	// DBPath is this replica's bets store; raft's log, stable store and
	// snapshots live in DBPath + ".raft/".
	DBPath string
	// Agencies is AGENCIES: the first leader begins the round with it.
	Agencies int
	// Logger receives the node's lines and raft's own (logformat.Discard by default).
	Logger logformat.Logger
	// Now is the leader's clock for the entries it writes.
	Now func() time.Time
	// TLS, when set, is the client config this node dials its peers with
	// (its own replica pair and the lottery's CA); every peer must then
	// prove its identity with a replica certificate. nil is plaintext: the
	// peers' ids are only claimed (CLUSTER_INSECURE).
	TLS *tls.Config
	// Insecure lets replicas speak in plaintext (TLS nil): a peer's id is
	// then only claimed. Without it, a node without TLS accepts no replica.
	Insecure bool
	// Timeouts; a zero field takes its default (DefaultTimeouts).
	Timeouts Timeouts
	// Snapshots is when raft snapshots the store and compacts its log; a
	// zero field takes its default (DefaultSnapshots).
	Snapshots Snapshots
	// LogStore is where raft keeps its log (DefaultLogStore when empty).
	LogStore LogStore
	// WALSegmentSize is the size of raft-wal's segment files (0: its
	// default, 64 MiB). Entries of the open segment stay readable after the
	// log is compacted behind a snapshot, until the segment is full.
	WALSegmentSize int
	// ArchiveKeep is how many archived rounds stay beside the store when a
	// new round archives one (0: all).
	ArchiveKeep int
	// AdminURL is this node's admin listener's URL (ADMIN_ADDR), which it
	// tells its peers: a follower's refusal of a change names the leader's.
	AdminURL string
	// StoreCheck checks a store file this node did not write itself before
	// it opens it: a snapshot restored into its store, a backup it is
	// seeded with, an archive (store.Options.Check). nil: none.
	StoreCheck store.FileCheck
	// Hooks are faults for tests; nil in production.
	Hooks *Hooks
}

// Timeouts are raft's timing.
type Timeouts struct {
	Heartbeat, Election, LeaderLease, Commit time.Duration
	// Apply bounds the wait for one write to be committed and applied.
	Apply time.Duration
}

// DefaultTimeouts are tuned for a failover within about 1 s on a LAN (raft's
// own defaults are 1 s heartbeat and election timeouts, 500 ms lease).
var DefaultTimeouts = Timeouts{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond,
	LeaderLease: 150 * time.Millisecond, Commit: 20 * time.Millisecond, Apply: 10 * time.Second}

// withDefaults fills each zero field with its default, field by field.
func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Heartbeat, &d.Heartbeat}, {&t.Election, &d.Election}, {&t.LeaderLease, &d.LeaderLease},
		{&t.Commit, &d.Commit}, {&t.Apply, &d.Apply},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return t
}

// validate checks each timeout on its own, and raft's rule between them.
func (t Timeouts) validate() error {
	var errs []error
	for _, f := range []struct {
		name   string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"Heartbeat", t.Heartbeat, 5 * time.Millisecond, time.Minute},
		{"Election", t.Election, 5 * time.Millisecond, time.Minute},
		{"LeaderLease", t.LeaderLease, 5 * time.Millisecond, time.Minute},
		{"Commit", t.Commit, time.Millisecond, time.Minute},
		{"Apply", t.Apply, 10 * time.Millisecond, 10 * time.Minute},
	} {
		if f.v < f.lo || f.v > f.hi {
			errs = append(errs, fmt.Errorf("cluster timeout %s = %s: must be between %s and %s", f.name, f.v, f.lo, f.hi))
		}
	}
	if t.Election < t.Heartbeat {
		errs = append(errs, fmt.Errorf("cluster timeout Election = %s: must not be under Heartbeat (%s)", t.Election, t.Heartbeat))
	}
	if t.LeaderLease > t.Heartbeat {
		errs = append(errs, fmt.Errorf("cluster timeout LeaderLease = %s: must not exceed Heartbeat (%s)", t.LeaderLease, t.Heartbeat))
	}
	return errors.Join(errs...)
}

// Snapshots is the snapshot policy. A round is a burst of appends (about
// 230 bets an entry) followed by a few thousand small entries (finishes,
// deliveries) and then silence until the next round, so raft's default of
// checking every 120 s would never compact the log of a round shorter
// than that: the log is checked every Interval, compacted once Threshold
// entries accumulated (keeping Trailing behind the snapshot, for a
// follower a little behind), and every replica also snapshots when it
// applies the delivery that ends the round.
type Snapshots struct {
	Interval  time.Duration
	Threshold uint64
	Trailing  uint64
}

// DefaultSnapshots: a snapshot every 8,192 entries (about 1.9 M bets, 64 MB
// of log), checked every 5 s; 10,240 entries kept behind it.
var DefaultSnapshots = Snapshots{Interval: 5 * time.Second, Threshold: 8192, Trailing: 10240}

func (s Snapshots) withDefaults() Snapshots {
	if s.Interval == 0 {
		s.Interval = DefaultSnapshots.Interval
	}
	if s.Threshold == 0 {
		s.Threshold = DefaultSnapshots.Threshold
	}
	if s.Trailing == 0 {
		s.Trailing = DefaultSnapshots.Trailing
	}
	return s
}

// Hooks are test faults. Each nil hook does nothing.
type Hooks struct {
	// Barrier runs before each new leader's Barrier: an error fails it, as
	// a leader that cannot catch up would.
	Barrier func() error
	// Apply runs before a batch of entries is applied to the store: an
	// error fails the batch, as a failing disk would.
	Apply func(first, last uint64) error
	// Cut reports whether the network between this node and peer is cut: no
	// connection is made or kept between them.
	Cut func(peer int) bool
	// Diverge changes the leader's summary in a checkpoint before this
	// node holds its store to it, as a store that differs would.
	Diverge func(leader *store.Summary)
	// Tune changes the node's configuration at start (snapshots, segments).
	Tune func(cfg *Config)
}

// ParseNodes reads CLUSTER_NODES: "1=host:port,2=host:port,3=host:port",
// distinct ids and addresses separated by commas. (A new cluster is
// bootstrapped by an odd number of them: Start checks it.)
func ParseNodes(s string) (map[int]string, error) {
	if strings.ContainsAny(s, ";| \t") && !strings.Contains(s, ",") && strings.Count(s, "=") > 1 {
		return nil, fmt.Errorf("%q: separate the nodes with commas (1=host:port,2=host:port,3=host:port)", s)
	}
	nodes := map[int]string{}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		idText, addr, ok := strings.Cut(part, "=")
		idText, addr = strings.TrimSpace(idText), strings.TrimSpace(addr)
		id, err := strconv.Atoi(idText)
		if !ok || err != nil || id < 1 || id > MaxNodeID {
			return nil, fmt.Errorf("%q is not id=host:port with an id from 1 to %d", part, MaxNodeID)
		}
		if strings.ContainsAny(addr, ";= ") {
			return nil, fmt.Errorf("%q: separate the nodes with commas (1=host:port,2=host:port,3=host:port)", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %s is not host:port", part, addr)
		}
		if _, dup := nodes[id]; dup || seen[addr] {
			return nil, fmt.Errorf("%q: id %d or address %s given twice", part, id, addr)
		}
		nodes[id], seen[addr] = addr, true
	}
	if len(nodes) == 0 {
		return nil, errors.New("no node: 1=host:port,2=host:port,3=host:port")
	}
	return nodes, nil
}

// MaxNodeID bounds a node's id.
const MaxNodeID = 1 << 20

// FormatNodes writes nodes as CLUSTER_NODES does, by id.
func FormatNodes(nodes map[int]string) string {
	var parts []string
	for _, id := range sortedIDs(nodes) {
		parts = append(parts, fmt.Sprintf("%d=%s", id, nodes[id]))
	}
	return strings.Join(parts, ",")
}

// listID is the ID the first version derived from CLUSTER_NODES alone: a
// node whose raft state predates cluster IDs of their own keeps it.
func listID(nodes map[int]string) ID {
	sum := sha256.Sum256([]byte("tp0 cluster\n" + FormatNodes(nodes)))
	var id ID
	copy(id[:], sum[:])
	return id
}
