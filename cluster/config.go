package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
)

// Config configures a node.
type Config struct {
	// ID is this node's id, a key of Nodes.
	ID int
	// Nodes are every node's id and address: the agency-facing host:port,
	// which carries the replicas' traffic too.
	Nodes map[int]string
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
	// (its own replica pair and the lottery's CA).
	TLS *tls.Config
	// Timeouts; zero values take the defaults (DefaultTimeouts).
	Timeouts Timeouts
	// Dial, when set, opens the TCP connections to the other replicas (a
	// test's network that can partition them); nil is net.Dialer.
	Dial func(address string, timeout time.Duration) (net.Conn, error)
	// SnapshotThreshold and TrailingLogs: raft snapshots after that many
	// new entries and keeps that many behind a snapshot (0: 4096 each).
	SnapshotThreshold, TrailingLogs uint64
}

// Timeouts are raft's timing.
type Timeouts struct {
	Heartbeat, Election, LeaderLease, Commit time.Duration
	// Apply bounds the wait for one write to be committed and applied.
	Apply time.Duration
}

// DefaultTimeouts are tuned for a failover within about 2 s on a LAN (raft's
// own defaults are 1 s heartbeat and election timeouts, 500 ms lease).
var DefaultTimeouts = Timeouts{Heartbeat: 500 * time.Millisecond, Election: 500 * time.Millisecond,
	LeaderLease: 250 * time.Millisecond, Commit: 20 * time.Millisecond, Apply: 10 * time.Second}

// ParseNodes reads CLUSTER_NODES: "1=host:port,2=host:port,3=host:port",
// an odd number of distinct ids and addresses.
func ParseNodes(s string) (map[int]string, error) {
	nodes := map[int]string{}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		idText, addr, ok := strings.Cut(part, "=")
		idText, addr = strings.TrimSpace(idText), strings.TrimSpace(addr)
		id, err := strconv.Atoi(idText)
		if !ok || err != nil || id < 1 {
			return nil, fmt.Errorf("%q is not id=host:port with an id of 1 or more", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %s is not host:port", part, addr)
		}
		if _, dup := nodes[id]; dup || seen[addr] {
			return nil, fmt.Errorf("%q: id %d or address %s given twice", part, id, addr)
		}
		nodes[id], seen[addr] = addr, true
	}
	if len(nodes) == 0 || len(nodes)%2 == 0 {
		return nil, fmt.Errorf("%d nodes: a cluster has an odd number of nodes (1, 3, 5)", len(nodes))
	}
	return nodes, nil
}
