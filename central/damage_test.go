package central

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/internal/storetest"
	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/store"
)

// A store damaged where only the draw reads stops the central with
// ErrDamaged: no panic, and no draw retried forever (it once panicked in
// the draw, and again at every restart).
func TestCentral_DamagedStoreStopsTheDraw(t *testing.T) {
	t.Parallel()
	opts := NewOptions()
	opts.Agencies, opts.DBPath = 2, storetest.DamagedRow(t, 2)
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
