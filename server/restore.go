package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/store"
)

const restoreUsage = `usage: server restore --from FILE --db PATH
       server restore --from FILE --db PATH --cluster-nodes ID=HOST:PORT[,...] --cluster-node-id ID

Makes a backup (server backup) the store of a central that is not running:
  one central  PATH becomes the backup, without what a cluster's replica
               recorded (its applied index, its cluster): start the central
               on it and the round goes on (agencies resend what it lacks)
  a cluster    the node's first state: PATH and its raft folder (PATH.raft)
               hold the backup as a snapshot at log index 1 of a new cluster
               of those nodes; start it with the same CLUSTER_NODES and
               CLUSTER_NODE_ID, and the others empty with CLUSTER_JOIN=true
               (then server cluster add), or named in the list
PATH (and PATH.raft) must not exist.
`

// restoreCmd runs `server restore`.
func restoreCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	from := fs.String("from", "", "the backup")
	db := fs.String("db", "", "the store to make")
	nodes := fs.String("cluster-nodes", "", "a new cluster's nodes")
	node := fs.Int("cluster-node-id", 0, "this node's id")
	pos, err := opFlags(fs, args)
	if err == nil && (len(pos) != 0 || *from == "" || *db == "" || (*nodes == "") != (*node == 0)) {
		err = errors.New("--from and --db are needed, and --cluster-nodes with --cluster-node-id, or neither")
	}
	if err != nil {
		return usageErr(stdout, stderr, "restore", restoreUsage, err)
	}
	if err := restore(*from, *db, *nodes, *node, stdout); err != nil {
		fmt.Fprintf(stderr, "server restore: %v\n", err)
		return 1
	}
	return 0
}

func restore(from, db, nodes string, node int, stdout io.Writer) error {
	if _, err := os.Stat(db); err == nil {
		return fmt.Errorf("%s exists: move it aside first", db)
	}
	b, err := store.Open(from, store.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("the backup: %w", err)
	}
	r, rerr := b.Round()
	if err := errors.Join(rerr, b.Check(), b.Close()); err != nil {
		return fmt.Errorf("the backup %s fails bbolt's check: %w", from, err)
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
		id, err := cluster.Seed(cluster.Config{ID: node, Nodes: ns, DBPath: db}, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: node %d of a new cluster %s (ID %s), holding the backup's round of %s (%d bets); start it with CLUSTER_NODES=%s CLUSTER_NODE_ID=%d\n",
			db, node, cluster.FormatNodes(ns), id, r.Started.UTC().Format(time.RFC3339), r.Bets, cluster.FormatNodes(ns), node)
		return nil
	}
	if err := store.Restore(db, f); err != nil {
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
