package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrInUse means a node's folder is in use: the node runs.
var ErrInUse = errors.New("the node's folder is in use by a running node")

// lockName is a file in the raft folder that a running node holds locked
// (an empty bbolt file: bbolt locks it the same way on every platform).
const lockName = "node.lock"

// lockFolder locks the raft folder dir for this process, waiting at most
// wait for another that holds it; it returns the unlock.
func lockFolder(dir string, wait time.Duration) (func() error, error) {
	db, err := bolt.Open(filepath.Join(dir, lockName), 0o600, &bolt.Options{Timeout: wait})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by a node that runs: stop it first", ErrInUse, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return db.Close, nil
}
