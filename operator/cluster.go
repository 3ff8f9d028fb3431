package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loteria-nacional/tp0/adminapi"
	"github.com/loteria-nacional/tp0/cluster"
)

const clusterUsage = `usage: server cluster list [--admin URL] [--token TOKEN]
       server cluster add ID HOST:PORT [--readdress] [--admin URL] [--token TOKEN]
       server cluster remove ID [--admin URL] [--token TOKEN]
       server cluster recover --db PATH --node ID --nodes ID=HOST:PORT[,...]

list    one line per server: id, address, suffrage, role (unreachable: the
        leader has not heard from it within the election timeout), whether it
        has caught up, the leader's view of it (last contact, log index, lag)
        and the entry format it reads; then the cluster's version and the
        answering node's last cross-replica check of its store
add     adds node ID at HOST:PORT as a non-voter; the leader promotes it to a
        voter once it has caught up. Start it first with an empty DB_PATH,
        CLUSTER_JOIN=true and CLUSTER_NODES naming the cluster's members and
        itself (any number of them); the leader checks that HOST:PORT answers
        as node ID before it adds it. --readdress moves member ID to HOST:PORT
        (it must answer there as node ID); without it, an ID that is a member
        at another address is refused
remove  removes node ID (a lost machine; the leader steps down if it is ID);
        refused when the voters left could not elect a leader with the nodes
        that answer now
recover OFFLINE, on a survivor whose cluster lost its quorum for good: makes
        --nodes (the survivors) the whole cluster in the stopped node's files
        (raft's RecoverCluster), under a new cluster ID. Entries the survivor
        lacks are lost, even if they were acknowledged; recover only one
        survivor and add the others. It refuses a folder in use (the node
        runs), and says first which nodes must be stopped for good.

` + adminHelp

// Cluster runs `server cluster ...`.
func Cluster(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("cluster")
	admin := addAdminFlags(fs)
	db := fs.String("db", "", "recover: the node's DB_PATH")
	node := fs.Int("node", 0, "recover: the node's id")
	nodes := fs.String("nodes", "", "recover: the survivors")
	readdress := fs.Bool("readdress", false, "add: move a member to a new address")
	pos, err := parseArgs(fs, args)
	if err == nil && len(pos) == 0 {
		err = errors.New("which command: list, add, remove or recover?")
	}
	if err != nil {
		return usageErr(stdout, stderr, "cluster", clusterUsage, err)
	}
	want := map[string]int{"list": 1, "add": 3, "remove": 2, "recover": 1}
	if n, ok := want[pos[0]]; !ok || len(pos) != n {
		return usageErr(stdout, stderr, "cluster", clusterUsage, fmt.Errorf("%q is not a cluster command with %d argument(s)", strings.Join(pos, " "), len(pos)-1))
	}
	if pos[0] == "recover" {
		return recoverCmd(*db, *node, *nodes, stdout, stderr)
	}
	c, err := admin.client()
	if err != nil {
		return usageErr(stdout, stderr, "cluster", clusterUsage, err)
	}
	ctx := context.Background()
	cmd := "cluster " + pos[0]
	switch pos[0] {
	case "list":
		var v adminapi.ClusterView
		if err := c.Do(ctx, http.MethodGet, adminapi.PathCluster, nil, &v); err != nil {
			return failed(stderr, cmd, err)
		}
		printServers(stdout, v)
	case "add":
		id, err := nodeID(pos[1])
		if err != nil {
			return usageErr(stdout, stderr, "cluster", clusterUsage, err)
		}
		var added adminapi.AddedServer
		if err := c.Do(ctx, http.MethodPost, adminapi.PathServers, adminapi.AddServer{ID: id, Address: pos[2], Readdress: *readdress}, &added); err != nil {
			return failed(stderr, cmd, err)
		}
		if added.Suffrage == "nonvoter" {
			fmt.Fprintf(stdout, "node %d at %s added as a non-voter: it catches up from a snapshot and the log, and the leader makes it a voter once it has (server cluster list shows it)\n", id, pos[2])
		} else {
			fmt.Fprintf(stdout, "node %d is at %s, a %s\n", id, pos[2], added.Suffrage)
		}
	case "remove":
		id, err := nodeID(pos[1])
		if err != nil {
			return usageErr(stdout, stderr, "cluster", clusterUsage, err)
		}
		if err := c.Do(ctx, http.MethodDelete, adminapi.PathServers+"/"+strconv.Itoa(id), nil, nil); err != nil {
			return failed(stderr, cmd, err)
		}
		fmt.Fprintf(stdout, "node %d removed\n", id)
	}
	return exitOK
}

func nodeID(s string) (int, error) {
	id, err := strconv.Atoi(s)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%q is not a node id", s)
	}
	return id, nil
}

// printServers writes a cluster's view as a table.
func printServers(w io.Writer, v adminapi.ClusterView) {
	fmt.Fprintf(w, "cluster %s (version %d), as node %d sees it\n", v.ClusterID, v.Version, v.Node)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tROLE\tCAUGHT UP\tLAST CONTACT\tLOG INDEX\tLAG\tFORMAT")
	for _, s := range v.Servers {
		role, contact, caught, format := s.Role, "-", "-", "?"
		if role == "" {
			role = "?"
		}
		if s.LastContactMs >= 0 {
			contact = (time.Duration(s.LastContactMs) * time.Millisecond).String()
		}
		if s.LastContactMs >= 0 || s.Role == "unreachable" {
			caught = map[bool]string{true: "yes", false: "no"}[s.CaughtUp]
		}
		if s.Version > 0 {
			format = strconv.Itoa(s.Version)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.Address, s.Suffrage, role, caught, contact, s.LastLog, s.Lag, format)
	}
	tw.Flush()
	in := v.Integrity
	switch {
	case in.Diverged != "":
		fmt.Fprintf(w, "integrity: node %d's store DIVERGED from the leader's: %s\n", v.Node, in.Diverged)
	case in.Checked > 0:
		fmt.Fprintf(w, "integrity: node %d's store matched the leader's at %d checkpoint(s), the last at log index %d\n", v.Node, in.Checks, in.Checked)
	default:
		fmt.Fprintf(w, "integrity: node %d's store has met no checkpoint yet\n", v.Node)
	}
}

// recoverCmd runs `server cluster recover`.
func recoverCmd(db string, node int, nodes string, stdout, stderr io.Writer) int {
	if db == "" || node == 0 || nodes == "" {
		return usageErr(stdout, stderr, "cluster", clusterUsage, errors.New("recover needs --db, --node and --nodes"))
	}
	ns, err := cluster.ParseNodes(nodes)
	if err != nil {
		return usageErr(stdout, stderr, "cluster", clusterUsage, fmt.Errorf("--nodes: %w", err))
	}
	tell := func(gone map[int]string) error {
		fmt.Fprintf(stderr, "server cluster recover: WARNING: %s becomes the whole cluster, a new one. Every entry node %d lacks is lost, acknowledged or not;\n"+
			"a survivor recovered apart from this one would be a second cluster.\n", cluster.FormatNodes(ns), node)
		if len(gone) > 0 {
			fmt.Fprintf(stderr, "server cluster recover: these nodes of the cluster must be stopped for good, their folders moved aside, before node %d starts: %s\n"+
				"(to bring a machine back, start it empty with CLUSTER_JOIN=true and add it: server cluster add)\n", node, cluster.FormatNodes(gone))
		}
		return nil
	}
	id, err := cluster.Recover(cluster.Config{ID: node, Nodes: ns, DBPath: db, StoreCheck: StoreCheck()}, tell)
	if err != nil {
		return failed(stderr, "cluster recover", err)
	}
	fmt.Fprintf(stdout, "node %d recovered as the cluster %s (ID %s): start it with CLUSTER_NODES=%s (its store is rebuilt at start)\n", node, cluster.FormatNodes(ns), id, cluster.FormatNodes(ns))
	return exitOK
}
