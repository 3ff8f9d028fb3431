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
       server cluster add ID HOST:PORT [--admin URL] [--token TOKEN]
       server cluster remove ID [--admin URL] [--token TOKEN]
       server cluster recover --db PATH --node ID --nodes ID=HOST:PORT[,...]

list    one line per server: id, address, suffrage, role, and the leader's
        view of it (its last contact, its last log index and lag)
add     adds node ID at HOST:PORT as a voter: start it first with
        CLUSTER_JOIN=true, an empty DB_PATH and CLUSTER_NODES naming it
remove  removes node ID (a lost machine; the leader steps down if it is ID)
recover OFFLINE, on a survivor whose cluster lost its quorum for good: makes
        --nodes (the survivors) the whole cluster in the stopped node's files
        (raft's RecoverCluster). Entries the survivor lacks are lost, even if
        they were acknowledged; recover only one survivor and add the others.

` + adminHelp

// Cluster runs `server cluster ...`.
func Cluster(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("cluster")
	admin := addAdminFlags(fs)
	db := fs.String("db", "", "recover: the node's DB_PATH")
	node := fs.Int("node", 0, "recover: the node's id")
	nodes := fs.String("nodes", "", "recover: the survivors")
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
		if err := c.Do(ctx, http.MethodPost, adminapi.PathServers, adminapi.AddServer{ID: id, Address: pos[2]}, nil); err != nil {
			return failed(stderr, cmd, err)
		}
		fmt.Fprintf(stdout, "node %d at %s added as a voter; it catches up from a snapshot and the log\n", id, pos[2])
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
	fmt.Fprintf(w, "cluster %s\n", v.ClusterID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tROLE\tLAST CONTACT\tLOG INDEX\tLAG")
	for _, s := range v.Servers {
		role, contact := s.Role, "-"
		if role == "" {
			role = "?"
		}
		if s.LastContactMs >= 0 {
			contact = (time.Duration(s.LastContactMs) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\n", s.ID, s.Address, s.Suffrage, role, contact, s.LastLog, s.Lag)
	}
	tw.Flush()
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
	fmt.Fprintf(stderr, "server cluster recover: WARNING: %s becomes the whole cluster. Every entry node %d lacks is lost, acknowledged or not;\n"+
		"a survivor recovered apart from this one would be a second cluster. Stop every node first, recover one survivor, add the others.\n", cluster.FormatNodes(ns), node)
	if err := cluster.Recover(cluster.Config{ID: node, Nodes: ns, DBPath: db}); err != nil {
		return failed(stderr, "cluster recover", err)
	}
	fmt.Fprintf(stdout, "node %d recovered as the cluster %s: start it with CLUSTER_NODES=%s (its store is rebuilt at start)\n", node, cluster.FormatNodes(ns), cluster.FormatNodes(ns))
	return exitOK
}
