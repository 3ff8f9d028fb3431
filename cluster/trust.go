package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/loteria-nacional/tp0/store"
)

// A replica's store is written without fsync (store.Options.NoSync): raft's
// log is the durable copy, fsynced once per batch of entries, and the store
// is what applying it produced. So the store is trusted only after a clean
// stop: Close syncs it, closes it, and then writes the clean marker, which
// records the file's state (size, newest transaction) and its applied
// index. At the next start the marker is read and removed before anything
// else is written; the store is used as it is only if the file still says
// exactly what the marker recorded. Otherwise (a crash, a kill -9, a failed
// apply, a file overwritten, truncated or replaced by an older copy while
// the node was down) the file is thrown away and rebuilt: raft restores the
// latest snapshot and replays the log after it.

// markerName is the clean marker's file, in the raft folder.
const markerName = "store-clean.json"

// marker is what a clean stop recorded of the store.
type marker struct {
	Applied uint64          `json:"applied_index"`
	File    store.FileState `json:"file"`
	Cluster string          `json:"cluster_id"`
}

// writeMarker records the closed store at path as cleanly stopped.
func writeMarker(dir, path string, applied uint64, cluster ID) error {
	fsState, err := store.ReadFileState(path)
	if err != nil {
		return err
	}
	b, err := json.Marshal(marker{Applied: applied, File: fsState, Cluster: cluster.String()})
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
	fsState, err := store.ReadFileState(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, "the store file is missing"
	case err != nil:
		return false, err.Error()
	case fsState != m.File:
		return false, fmt.Sprintf("the store file changed since the clean stop (size %d, transaction %d; the stop recorded %d, %d)",
			fsState.Size, fsState.TxID, m.File.Size, m.File.TxID)
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
