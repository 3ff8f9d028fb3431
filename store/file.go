package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The store file's life beyond one round: archiving a finished round.

// ArchiveName returns the name under which a finished round's file is moved
// aside: the store's name with the draw time, e.g. bets-20261126T181300Z.db.
func ArchiveName(path string, drawTime time.Time) string {
	base := strings.TrimSuffix(path, ".db")
	return base + "-" + drawTime.UTC().Format("20060102T150405.000Z") + ".db"
}

// Archive moves the closed store file at path aside to ArchiveName, or,
// when a file of that name exists (two draws at the same time, after the
// clock stepped back), to the name with -2, -3, ...: an older archive is
// never overwritten. It returns the name used.
func Archive(path string, drawTime time.Time) (string, error) {
	base := strings.TrimSuffix(ArchiveName(path, drawTime), ".db")
	for n := 1; n <= 1000; n++ {
		dst := base + ".db"
		if n > 1 {
			dst = fmt.Sprintf("%s-%d.db", base, n)
		}
		// A hard link fails when dst exists, atomically; then the old name goes.
		err := os.Link(path, dst)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			// No hard links here (some file systems): check, then rename.
			if _, serr := os.Lstat(dst); serr == nil {
				continue
			}
			if err := os.Rename(path, dst); err != nil {
				return "", fmt.Errorf("archive round: %w", err)
			}
			return dst, nil
		}
		if err := os.Remove(path); err != nil {
			os.Remove(dst)
			return "", fmt.Errorf("archive round: %w", err)
		}
		return dst, nil
	}
	return "", fmt.Errorf("archive round: %s-2 ... -1000.db all exist", base)
}

// Archives returns the archived rounds of the store at path, oldest first
// (their names sort by draw time).
func Archives(path string) ([]string, error) {
	base := strings.TrimSuffix(path, ".db")
	matches, err := filepath.Glob(globEscape(base) + "-[0-9]*T*Z*.db")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(matches, func(a, b string) int { return strings.Compare(archiveKey(a), archiveKey(b)) })
	return matches, nil
}

// archiveKey orders archive names by draw time, then by their -N suffix
// (none is 1).
func archiveKey(name string) string {
	name = strings.TrimSuffix(name, ".db")
	stamp, n := name, "1"
	if i := strings.LastIndex(name, "Z-"); i >= 0 {
		stamp, n = name[:i+1], name[i+2:]
	}
	return fmt.Sprintf("%s %08s", stamp, n)
}

// globEscape quotes the pattern characters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PruneArchives removes the oldest archived rounds of the store at path so
// that at most keep remain (keep 0: all are kept). It returns the removed.
func PruneArchives(path string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	all, err := Archives(path)
	if err != nil || len(all) <= keep {
		return nil, err
	}
	var removed []string
	for _, old := range all[:len(all)-keep] {
		if err := os.Remove(old); err != nil {
			return removed, fmt.Errorf("prune archives: %w", err)
		}
		removed = append(removed, old)
	}
	return removed, nil
}

// Snapshot is a consistent view of the whole store, taken at once and
// written later (bbolt's read transactions do not block writers): a
// replica's snapshot for its peers.
type Snapshot struct {
	s    *Store
	tx   *bolt.Tx
	once sync.Once
}

// Snapshot takes a snapshot; Release it when done.
func (s *Store) Snapshot() (*Snapshot, error) {
	if err := s.damage(); err != nil {
		return nil, err
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return &Snapshot{s: s, tx: tx}, nil
}

// WriteTo writes the snapshot as a store file, once every batch in it
// passed its checksum record: a damaged store is not copied.
func (sn *Snapshot) WriteTo(w io.Writer) (n int64, err error) {
	err = sn.s.safe(func() error {
		if err := eachRow(sn.tx, func(uint64, []byte) error { return nil }); err != nil {
			return err
		}
		var werr error
		n, werr = sn.tx.WriteTo(w)
		return werr
	})
	return n, err
}

// Release ends the snapshot's read transaction; later calls do nothing.
func (sn *Snapshot) Release() { sn.once.Do(func() { sn.tx.Rollback() }) }

// Backup writes a consistent copy of the whole store to w from one read
// transaction, while writes go on: a store file that Open, bbolt's check
// and `server export` accept. It returns the bytes written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	sn, err := s.Snapshot()
	if err != nil {
		return 0, err
	}
	defer sn.Release()
	return sn.WriteTo(w)
}

// Restore replaces the (closed) store file at path with the copy read from
// r: written to a temp file beside it, synced, checked whole (check, when
// not nil, runs before it is opened; Verify then holds it to itself), and
// renamed over path, so a crash leaves the old file or the new, never half.
func Restore(path string, r io.Reader, check FileCheck) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("restore %s: %w: the folder %s does not exist (create it first)", path, ErrNoFolder, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-restore-*")
	if err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, werr := io.Copy(f, r)
	if err := errors.Join(werr, f.Sync(), f.Close(), os.Chmod(tmp, 0o600)); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	s, err := Open(tmp, Options{ReadOnly: true, Check: check})
	if err != nil {
		return fmt.Errorf("restore %s: the copy is not a whole store: %w", path, err)
	}
	_, verr := s.Verify()
	if err := errors.Join(verr, s.Close()); err != nil {
		return fmt.Errorf("restore %s: the copy fails its check: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("restore %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// FileSum is what a closed store file is: its size and a CRC-32C of every
// byte of it. A replica records it when it stops cleanly and trusts its
// file at the next start only if the file still sums the same (package
// cluster): any byte changed while it was down means a rebuild.
type FileSum struct {
	Size int64  `json:"size"`
	CRC  string `json:"crc32c"` // 8 hex digits
}

// SumFile reads the file at path whole and returns its FileSum.
func SumFile(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return FileSum{}, err
	}
	return FileSum{Size: n, CRC: fmt.Sprintf("%08x", h.Sum32())}, nil
}
