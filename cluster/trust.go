package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// A replica's store is written without fsync (store.Options.NoSync): raft's
// log is the durable copy, fsynced once per batch of entries, and the store
// is what applying it produced. So the store is trusted only after a clean
// stop: Close syncs it, closes it, and then writes the clean marker, which
// records the file's size and a CRC-32C of every byte of it
// (store.FileSum), and its applied index. At the next start the marker is
// read and removed before anything else is written; the store is used as it
// is only if the file still sums exactly to what the marker recorded.
// Otherwise (a crash, a kill -9, a failed apply, a byte of the file changed,
// the file truncated or replaced by an older copy while the node was down,
// a marker of an older version that recorded no checksum) the file is
// thrown away and rebuilt: raft restores the latest snapshot and replays the
// log after it. A store that is not trusted is never served: the node
// starts, rebuilt, rather than refuse to start.

// markerName is the clean marker's file, in the raft folder.
const markerName = "store-clean.json"

// marker is what a clean stop recorded of the store.
type marker struct {
	Applied uint64        `json:"applied_index"`
	File    store.FileSum `json:"file"`
	Cluster string        `json:"cluster_id"`
	// LastLog is the raft log's last index at the stop: a log that ends
	// before it at the next start lost entries.
	LastLog uint64 `json:"last_log_index"`
}

// writeMarker records the closed store at path as cleanly stopped.
func writeMarker(dir, path string, applied, lastLog uint64, cluster ID) error {
	sum, err := store.SumFile(path)
	if err != nil {
		return err
	}
	b, err := json.Marshal(marker{Applied: applied, File: sum, Cluster: cluster.String(), LastLog: lastLog})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, markerName+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, markerName)); err != nil {
		return err
	}
	return syncDir(dir)
}

// peekMarker reads the clean marker, leaving it (ok false: none, or one
// that cannot be read).
func peekMarker(dir string) (m marker, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return marker{}, false
	}
	return m, true
}

// takeMarker reads and removes the clean marker; ok is false when there is
// none (the last stop was not clean) or it cannot be read. The removal is
// durable before it returns: a crash from here on leaves no marker.
func takeMarker(dir string) (m marker, ok bool, err error) {
	p := filepath.Join(dir, markerName)
	b, rerr := os.ReadFile(p)
	if errors.Is(rerr, fs.ErrNotExist) {
		return marker{}, false, nil
	}
	if err := os.Remove(p); err != nil {
		return marker{}, false, fmt.Errorf("removing the clean marker: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return marker{}, false, err
	}
	if rerr != nil || json.Unmarshal(b, &m) != nil {
		return marker{}, false, nil
	}
	return m, true, nil
}

// trusted reports whether the store at path is the one the marker
// describes, and why not.
func (m marker) trusted(path string, cluster ID) (bool, string) {
	if m.File.CRC == "" {
		return false, "the clean stop recorded no checksum of the store (a version before them)"
	}
	sum, err := store.SumFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, "the store file is missing"
	case err != nil:
		return false, err.Error()
	case sum != m.File:
		return false, fmt.Sprintf("the store file changed since the clean stop (%d bytes, CRC-32C %s; the stop recorded %d bytes, %s)",
			sum.Size, sum.CRC, m.File.Size, m.File.CRC)
	case m.Cluster != cluster.String():
		return false, fmt.Sprintf("the clean stop was of cluster %s, the raft folder is of %s", m.Cluster, cluster)
	}
	return true, ""
}

// syncDir makes a rename or removal in dir durable (Windows cannot sync a
// folder: there it is best effort).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openStore opens the replica's store: as it is after a clean stop (see
// trust.go), otherwise a new file that raft fills from its snapshot and
// log. A store without raft state beside it is another store (a one-node
// central's, or another cluster's): it is moved aside, never used.
func (n *Node) openStore(has bool, id ID, snaps raft.SnapshotStore) (*store.Store, error) {
	path, opts := n.cfg.DBPath, replicaStoreOptions(n.cfg)
	m, marked, err := takeMarker(n.dir)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	exists := statErr == nil
	why := "no clean stop was recorded"
	switch {
	case !exists:
		why = "there is no store file"
	case !has:
		aside := fmt.Sprintf("%s.set-aside-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(path, aside); err != nil {
			return nil, err
		}
		n.log.Warningf("action: cluster_start | result: in_progress | nodo: %d | aviso: %s", n.cfg.ID, logformat.Value(fmt.Sprintf(
			"DB_PATH %s held a store but there is no raft state beside it: moved aside to %s (a replica's store is made from the cluster's log)", path, aside)))
		exists = false
	default:
		if other := readClusterID(path); other != "" && other != id.String() {
			return nil, fmt.Errorf("%w: the store %s belongs to cluster %s, its raft folder %s to cluster %s: start the node on the files of one node (or move the store aside: it is rebuilt from the raft folder)",
				ErrOtherCluster, path, other, n.dir, id)
		}
		if marked {
			n.trusted, why = m.trusted(path, id)
		}
	}
	if n.trusted {
		// The marker's CRC of the whole file says it is the file this node
		// closed at its clean stop, byte for byte: StoreCheck, for files it
		// did not write itself, would only read 10 M bets again (about 1 s).
		opts.Check = nil
		st, err := store.Open(path, opts)
		if err != nil {
			return nil, err
		}
		applied, err := st.AppliedIndex()
		last := lastSnapshot(snaps)
		switch {
		case err != nil:
			n.trusted, why = false, err.Error()
		case applied != m.Applied:
			n.trusted, why = false, fmt.Sprintf("its applied index is %d, the clean stop recorded %d", applied, m.Applied)
		case applied < last:
			n.trusted, why = false, fmt.Sprintf("its applied index %d is behind the latest snapshot's %d", applied, last)
		}
		if n.trusted {
			n.log.Infof("action: cluster_start | result: success | nodo: %d | almacen: confiable | indice_aplicado: %d", n.cfg.ID, applied)
			return st, nil
		}
		st.Close()
	}
	if exists {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if has {
		n.log.Infof("action: cluster_start | result: in_progress | nodo: %d | almacen: reconstruido | motivo: %s", n.cfg.ID, logformat.Value(why))
	}
	st, err := store.Open(path, opts)
	if err != nil {
		return nil, err
	}
	if !id.IsZero() {
		if err := st.SetClusterID(id.String()); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// readClusterID reads the cluster ID a store file records ("" when none,
// or when the file cannot be read: it is rebuilt then).
func readClusterID(path string) string {
	st, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		return ""
	}
	defer st.Close()
	id, _ := st.ClusterID()
	return id
}

func lastSnapshot(snaps raft.SnapshotStore) uint64 {
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return 0
	}
	return list[0].Index
}
