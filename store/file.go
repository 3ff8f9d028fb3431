package store

import (
	"fmt"
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

// Archive moves the closed store file at path aside to ArchiveName.
func Archive(path string, drawTime time.Time) (string, error) {
	dst := ArchiveName(path, drawTime)
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("archive round: %w", err)
	}
	return dst, nil
}
