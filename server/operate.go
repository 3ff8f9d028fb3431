package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/store"
)

// The operators' commands against a running central's admin listener
// (central/operate.go): the cluster's membership, a new round, a backup.

const clusterUsage = `usage: server cluster list --admin URL [--token TOKEN]
       server cluster add ID HOST:PORT --admin URL [--token TOKEN]
       server cluster remove ID --admin URL [--token TOKEN]
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

Changes need the admin token (ADMIN_TOKEN in the environment, or --token).
A change sent to a follower is refused with the leader's address.
`

const roundUsage = `usage: server round new --admin URL [--agencies N] [--token TOKEN]

Ends the round, which must be over (drawn, every agency's winners delivered),
archives it beside the store and begins the next (N agencies; default: the
central's AGENCIES). On a cluster, send it to the leader.
`

const backupUsage = `usage: server backup --admin URL --out FILE [--token TOKEN]

Writes a consistent copy of the running central's store to FILE (a bbolt
file that 'server export --db FILE' and 'bbolt check' read), then checks it.
On a cluster, the leader's copy holds every acknowledged bet.
`

// opFlags parses args, which mix flags and positional arguments, into fs;
// it returns the positional ones.
func opFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// admin is a client of a central's admin listener.
type admin struct {
	url, token string
	client     *http.Client
}

func newAdmin(base, token string) (*admin, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--admin %q is not the admin listener's URL, such as http://127.0.0.1:8080", base)
	}
	if token == "" {
		token = os.Getenv("ADMIN_TOKEN")
	}
	return &admin{url: strings.TrimSuffix(base, "/"), token: token, client: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// do sends a request and decodes a JSON answer into out; a failure says
// what the central said (and where the leader is).
func (a *admin) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Leader string `json:"leader"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if e.Leader != "" {
			return fmt.Errorf("%s (%s); the leader is node %s", e.Error, resp.Status, e.Leader)
		}
		return fmt.Errorf("%s (%s)", e.Error, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// usageErr reports bad usage (exit 2); --help prints the usage (exit 0).
func usageErr(stdout, stderr io.Writer, cmd, usage string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "server %s: %v\n\n%s", cmd, err, usage)
	return 2
}

// clusterCmd runs `server cluster ...`.
func clusterCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("admin", "", "admin URL")
	token := fs.String("token", "", "admin token")
	db := fs.String("db", "", "recover: the node's DB_PATH")
	node := fs.Int("node", 0, "recover: the node's id")
	nodes := fs.String("nodes", "", "recover: the survivors")
	pos, err := opFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, clusterUsage)
		return 0
	}
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
	a, err := newAdmin(*base, *token)
	if err != nil {
		return usageErr(stdout, stderr, "cluster", clusterUsage, err)
	}
	switch pos[0] {
	case "list":
		var out struct {
			Cluster string           `json:"cluster_id"`
			Servers []cluster.Server `json:"servers"`
		}
		if err := a.do(http.MethodGet, "/api/cluster", nil, &out); err != nil {
			fmt.Fprintf(stderr, "server cluster list: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "cluster %s\n", out.Cluster)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tROLE\tLAST CONTACT\tLOG INDEX\tLAG")
		for _, s := range out.Servers {
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
	case "add":
		id, err := strconv.Atoi(pos[1])
		if err != nil || id < 1 {
			return usageErr(stdout, stderr, "cluster", clusterUsage, fmt.Errorf("%q is not a node id", pos[1]))
		}
		if err := a.do(http.MethodPost, "/api/cluster/servers", map[string]any{"id": id, "address": pos[2]}, nil); err != nil {
			fmt.Fprintf(stderr, "server cluster add: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "node %d at %s added as a voter; it catches up from a snapshot and the log\n", id, pos[2])
	case "remove":
		id, err := strconv.Atoi(pos[1])
		if err != nil || id < 1 {
			return usageErr(stdout, stderr, "cluster", clusterUsage, fmt.Errorf("%q is not a node id", pos[1]))
		}
		if err := a.do(http.MethodDelete, "/api/cluster/servers/"+strconv.Itoa(id), nil, nil); err != nil {
			fmt.Fprintf(stderr, "server cluster remove: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "node %d removed\n", id)
	}
	return 0
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
		fmt.Fprintf(stderr, "server cluster recover: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "node %d recovered as the cluster %s: start it with CLUSTER_NODES=%s (its store is rebuilt at start)\n", node, cluster.FormatNodes(ns), cluster.FormatNodes(ns))
	return 0
}

// roundCmd runs `server round new`.
func roundCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("round", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("admin", "", "admin URL")
	token := fs.String("token", "", "admin token")
	agencies := fs.Int("agencies", 0, "the new round's agencies")
	pos, err := opFlags(fs, args)
	if err != nil {
		return usageErr(stdout, stderr, "round", roundUsage, err)
	}
	if len(pos) != 1 || pos[0] != "new" {
		return usageErr(stdout, stderr, "round", roundUsage, errors.New("the command is: round new"))
	}
	a, err := newAdmin(*base, *token)
	if err != nil {
		return usageErr(stdout, stderr, "round", roundUsage, err)
	}
	var out struct {
		Round    string `json:"round"`
		Agencies int    `json:"agencies"`
	}
	if err := a.do(http.MethodPost, "/api/round", map[string]int{"agencies": *agencies}, &out); err != nil {
		fmt.Fprintf(stderr, "server round new: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "round %s begun with %d agencies; the finished one is archived beside the store\n", out.Round, out.Agencies)
	return 0
}

// backupCmd runs `server backup`.
func backupCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("admin", "", "admin URL")
	token := fs.String("token", "", "admin token")
	out := fs.String("out", "", "the file to write")
	pos, err := opFlags(fs, args)
	if err != nil {
		return usageErr(stdout, stderr, "backup", backupUsage, err)
	}
	if len(pos) != 0 || *out == "" {
		return usageErr(stdout, stderr, "backup", backupUsage, errors.New("--admin and --out are needed, and nothing else"))
	}
	a, err := newAdmin(*base, *token)
	if err != nil {
		return usageErr(stdout, stderr, "backup", backupUsage, err)
	}
	if err := backup(a, *out, stdout); err != nil {
		fmt.Fprintf(stderr, "server backup: %v\n", err)
		return 1
	}
	return 0
}

// backup fetches the store into out (whole or not at all) and checks it.
func backup(a *admin, out string, stdout io.Writer) error {
	req, err := http.NewRequest(http.MethodGet, a.url+"/api/backup", nil)
	if err != nil {
		return err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s (%s)", strings.TrimSpace(string(b)), resp.Status)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	n, cerr := io.Copy(f, resp.Body)
	if err := errors.Join(cerr, f.Sync(), f.Close(), os.Chmod(tmp, 0o600)); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	s, err := store.Open(tmp, store.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("the copy (%d bytes) is not a whole store: %w", n, err)
	}
	r, rerr := s.Round()
	err = errors.Join(rerr, s.Check(), s.Close())
	if err != nil {
		return fmt.Errorf("the copy (%d bytes) fails bbolt's check: %w", n, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d bytes, bbolt check ok; round of %s, %d bets, %d agencies finished, drawn: %t\n",
		out, n, r.Started.UTC().Format(time.RFC3339), r.Bets, len(r.Finished), r.Drawn)
	return nil
}
