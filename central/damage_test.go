package central

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/op/go-logging"
	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/store"
)

// junkBetsRoot writes a store whose agencies have all finished (the draw
// is due at the next start) and then overwrites the root page of its bets
// bucket: the round state still reads, the draw's scan does not.
func junkBetsRoot(t *testing.T, agencies int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for a := 1; a <= agencies; a++ {
		if _, err := s.Append(a, 0, testkit.Bets(a, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(a, 1000); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var root, size int64
	db.View(func(tx *bolt.Tx) error {
		root, size = int64(tx.Bucket([]byte("bets")).Root()), int64(db.Info().PageSize)
		return nil
	})
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, size)
	for i := range junk {
		junk[i] = byte(i*131 + 7)
	}
	if _, err := f.WriteAt(junk, root*size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// A store damaged where only the draw reads stops the central with
// ErrDamaged: no panic, and no draw retried forever (it once panicked in
// the draw, and again at every restart).
func TestCentral_DamagedStoreStopsTheDraw(t *testing.T) {
	t.Parallel()
	opts := NewOptions()
	opts.Agencies, opts.DBPath = 2, junkBetsRoot(t, 2)
	opts.Logger = testkit.Logger(t, logging.INFO)
	c, err := New(opts)
	if err != nil {
		t.Fatalf("the round state should still read: %v", err)
	}
	defer c.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(context.Background(), ln) }()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrDamaged) || !errors.Is(err, store.ErrInvalidFile) {
			t.Fatalf("Serve returned %v, want ErrDamaged", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve went on with a damaged store")
	}
}
