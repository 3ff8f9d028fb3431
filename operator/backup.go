package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/loteria-nacional/tp0/adminapi"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/store"
)

const backupUsage = `usage: server backup --out FILE [--admin URL] [--token TOKEN]

Writes a consistent copy of the running central's store to FILE (a store
file that 'server export --db FILE' reads), then checks it. On a cluster,
take it from the leader: its copy holds every acknowledged bet.

` + adminHelp

// Backup runs `server backup`.
func Backup(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("backup")
	admin := addAdminFlags(fs)
	out := fs.String("out", "", "the file to write")
	pos, err := parseArgs(fs, args)
	if err == nil && (len(pos) != 0 || *out == "") {
		err = errors.New("--out is needed, and nothing else")
	}
	if err != nil {
		return usageErr(stdout, stderr, "backup", backupUsage, err)
	}
	c, err := admin.client()
	if err != nil {
		return usageErr(stdout, stderr, "backup", backupUsage, err)
	}
	if err := backup(c, *out, stdout); err != nil {
		return failed(stderr, "backup", err)
	}
	return exitOK
}

// backup fetches the store into out (whole or not at all) and checks it.
// A follower's copy says so, on stdout and in the copy (restore prints it).
func backup(c *adminapi.Client, out string, stdout io.Writer) error {
	h, body, err := c.Stream(context.Background(), adminapi.PathBackup)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	n, cerr := io.Copy(f, body)
	if err := errors.Join(cerr, f.Sync(), f.Close(), os.Chmod(tmp, 0o600)); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	r, err := checkBackup(tmp)
	if err != nil {
		return fmt.Errorf("the copy (%d bytes) %w", n, err)
	}
	if role := h.Get(adminapi.HeaderBackupRole); role != "" {
		origin := fmt.Sprintf("node %s, %s, applied log index %s, leader %s, taken %s", h.Get(adminapi.HeaderBackupNode), role,
			h.Get(adminapi.HeaderBackupApplied), h.Get(adminapi.HeaderBackupLeader), time.Now().UTC().Format(time.RFC3339))
		if err := setOrigin(tmp, origin); err != nil {
			return err
		}
		if role != "leader" {
			fmt.Fprintf(stdout, "WARNING: a copy of a follower's store (%s): it may lack the newest acknowledged bets; take backups from the leader\n", origin)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d bytes, checked; round of %s, %d bets, %d agencies finished, drawn: %t\n",
		out, n, r.Started.UTC().Format(time.RFC3339), r.Bets, len(r.Finished), r.Drawn)
	return nil
}

// setOrigin records where the backup at path came from, in it.
func setOrigin(path, origin string) error {
	s, err := store.Open(path, store.Options{})
	if err != nil {
		return err
	}
	return errors.Join(s.SetOrigin(origin), s.Close())
}

// checkBackup checks the store file at path whole (in a child process,
// then Verify) and returns its round.
func checkBackup(path string) (store.Round, error) {
	s, err := openChecked(path)
	if err != nil {
		return store.Round{}, fmt.Errorf("is not a whole store: %w", err)
	}
	r, rerr := s.Round()
	_, verr := s.Verify()
	if err := errors.Join(rerr, verr, s.Close()); err != nil {
		return store.Round{}, fmt.Errorf("fails its check: %w", err)
	}
	return r, nil
}

const restoreUsage = `usage: server restore --from FILE --db PATH
       server restore --from FILE --db PATH --cluster-nodes ID=HOST:PORT[,...] --cluster-node-id ID

Makes a backup (server backup) the store of a central that is not running:
  one central  PATH becomes the backup, without what a cluster's replica
               recorded (its applied index, its cluster): start the central
               on it and the round goes on (agencies resend what it lacks)
  a cluster    the node's first state: PATH and its raft folder (PATH.raft)
               hold the backup as a snapshot at log index 1 of a new
               cluster of this node alone (see below)
PATH (and PATH.raft) must not exist; its folder must.

A cluster seeded this way is a new cluster of one node, with an ID of its
own: start that node with CLUSTER_NODES naming the nodes it will have and
CLUSTER_NODE_ID; every other node enters only by joining, started with an
empty DB_PATH and CLUSTER_JOIN=true, then added on the leader (server cluster
add ID HOST:PORT). A node started empty without CLUSTER_JOIN stops, saying so:
it never bootstraps a second cluster beside the seeded one.
`

// Restore runs `server restore`.
func Restore(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("restore")
	from := fs.String("from", "", "the backup")
	db := fs.String("db", "", "the store to make")
	nodes := fs.String("cluster-nodes", "", "a new cluster's nodes")
	node := fs.Int("cluster-node-id", 0, "this node's id")
	pos, err := parseArgs(fs, args)
	if err == nil && (len(pos) != 0 || *from == "" || *db == "" || (*nodes == "") != (*node == 0)) {
		err = errors.New("--from and --db are needed, and --cluster-nodes with --cluster-node-id, or neither")
	}
	if err != nil {
		return usageErr(stdout, stderr, "restore", restoreUsage, err)
	}
	if err := restore(*from, *db, *nodes, *node, stdout); err != nil {
		return failed(stderr, "restore", err)
	}
	return exitOK
}

func restore(from, db, nodes string, node int, stdout io.Writer) error {
	if _, err := os.Stat(db); err == nil {
		return fmt.Errorf("%s exists: move it aside first", db)
	}
	if dir := filepath.Dir(db); !exists(dir) {
		return fmt.Errorf("the folder %s does not exist: create it first (mkdir -p %s)", dir, dir)
	}
	r, err := checkBackup(from)
	if err != nil {
		return fmt.Errorf("the backup %s %w", from, err)
	}
	if origin := originOf(from); origin != "" {
		fmt.Fprintf(stdout, "%s: a backup of %s\n", from, origin)
	}
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	if nodes != "" {
		ns, err := cluster.ParseNodes(nodes)
		if err != nil {
			return fmt.Errorf("--cluster-nodes: %w", err)
		}
		id, err := cluster.Seed(cluster.Config{ID: node, Nodes: ns, DBPath: db, StoreCheck: StoreCheck()}, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: node %d, the one member of a new cluster (ID %s), holding the backup's round of %s (%d bets); start it with CLUSTER_NODES=%s CLUSTER_NODE_ID=%d, "+
			"then each other node with an empty DB_PATH and CLUSTER_JOIN=true, and add it on this node (server cluster add ID HOST:PORT)\n",
			db, node, id, r.Started.UTC().Format(time.RFC3339), r.Bets, cluster.FormatNodes(ns), node)
		return nil
	}
	if err := store.Restore(db, f, StoreCheck()); err != nil {
		return err
	}
	s, err := store.Open(db, store.Options{})
	if err != nil {
		os.Remove(db)
		return err
	}
	if err := errors.Join(s.SetReplica(0, ""), s.Close()); err != nil {
		os.Remove(db)
		return err
	}
	fmt.Fprintf(stdout, "%s: the backup's round of %s (%d bets, %d agencies finished, drawn: %t), for one central\n",
		db, r.Started.UTC().Format(time.RFC3339), r.Bets, len(r.Finished), r.Drawn)
	return nil
}

// originOf is where the backup at path came from, as it says.
func originOf(path string) string {
	s, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		return ""
	}
	defer s.Close()
	o, _ := s.Origin()
	return o
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }
