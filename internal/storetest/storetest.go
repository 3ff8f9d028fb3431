// Package storetest makes store files for tests of the packages above the
// store: damaged ones, as an unlucky operator finds them.
package storetest

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// JunkBetsRoot writes a store whose agencies 1..agencies have each sent
// 1,000 bets and finished (the draw is due at the next start), then
// overwrites the root page of its bets bucket with junk: the round's state
// still reads, the draw's scan does not. It returns the file's path.
func JunkBetsRoot(tb testing.TB, agencies int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for a := 1; a <= agencies; a++ {
		if _, err := s.Append(a, 0, lottery.BetSlice(testkit.Bets(a, 1000))); err != nil {
			tb.Fatal(err)
		}
		if err := s.Finish(a, 1000); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var root, size int64
	db.View(func(tx *bolt.Tx) error {
		root, size = int64(tx.Bucket([]byte("bets")).Root()), int64(db.Info().PageSize)
		return nil
	})
	db.Close()
	junk := make([]byte, size)
	for i := range junk {
		junk[i] = byte(i*131 + 7)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(junk, root*size); err != nil {
		tb.Fatal(err)
	}
	return path
}
