package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
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
