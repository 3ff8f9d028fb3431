package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
