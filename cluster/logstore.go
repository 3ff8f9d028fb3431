package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	bolt "go.etcd.io/bbolt"
)

// LogStore names where raft keeps its log and stable store, in the raft
// folder: LogBolt is raft-boltdb (raft.db, a B+tree), LogWAL is raft-wal
// (wal/, a write-ahead log of segment files). Both fsync every append.
type LogStore string

// The log stores.
const (
	LogBolt LogStore = "boltdb"
	LogWAL  LogStore = "wal"
)

// DefaultLogStore is the log store of a new node.
const DefaultLogStore = LogWAL

// defaultSegment is raft-wal's segment size (its own default).
const defaultSegment = 64 << 20

// logCacheSize is how many of the newest entries raft reads from memory
// (replication to a follower a little behind, the FSM's batches) instead
// of the log store.
const logCacheSize = 1024

// raftStore is raft's log and stable store, and their closing.
type raftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// cachedLog is raft's log through raft's LogCache, beside the stable store.
type cachedLog struct {
	*raft.LogCache
	stable raftStore
}

func (c cachedLog) Set(k, v []byte) error              { return c.stable.Set(k, v) }
func (c cachedLog) Get(k []byte) ([]byte, error)       { return c.stable.Get(k) }
func (c cachedLog) SetUint64(k []byte, v uint64) error { return c.stable.SetUint64(k, v) }
func (c cachedLog) GetUint64(k []byte) (uint64, error) { return c.stable.GetUint64(k) }
func (c cachedLog) Close() error                       { return c.stable.Close() }

// openLogStore opens the raft folder's log store. A folder holding the
// other kind's files is refused: switching would lose raft's state.
func openLogStore(dir string, kind LogStore, segment int, log hclog.Logger) (raftStore, error) {
	boltPath, walDir := filepath.Join(dir, "raft.db"), filepath.Join(dir, "wal")
	has := func(p string) bool { _, err := os.Stat(p); return err == nil }
	var s raftStore
	var err error
	switch kind {
	case LogBolt:
		if has(walDir) {
			return nil, fmt.Errorf("%s holds raft-wal's log (wal/): this node's log store is %s", dir, LogWAL)
		}
		s, err = raftboltdb.New(raftboltdb.Options{Path: boltPath, BoltOptions: &bolt.Options{
			Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType, InitialMmapSize: mmapSize(64 << 20)}})
	case LogWAL:
		if has(boltPath) {
			return nil, fmt.Errorf("%s holds raft-boltdb's log (raft.db): this node's log store is %s", dir, LogBolt)
		}
		if err := os.MkdirAll(walDir, 0o700); err != nil {
			return nil, err
		}
		if segment <= 0 {
			segment = defaultSegment
		}
		s, err = wal.Open(walDir, wal.WithLogger(log), wal.WithMetaStore(&metadb.BoltMetaDB{}), wal.WithSegmentSize(segment))
	default:
		return nil, fmt.Errorf("unknown log store %q (%s or %s)", kind, LogBolt, LogWAL)
	}
	if err != nil {
		return nil, fmt.Errorf("raft log in %s: %w", dir, err)
	}
	cache, err := raft.NewLogCache(logCacheSize, s)
	if err != nil {
		s.Close()
		return nil, err
	}
	return cachedLog{LogCache: cache, stable: s}, nil
}

// notFound reports raft-boltdb's "no such key" (raft-wal answers nil).
func notFound(err error) bool { return errors.Is(err, raftboltdb.ErrKeyNotFound) }
