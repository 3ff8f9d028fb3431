package central

import (
	"context"
	"errors"
	"net"
	"testing"
)

// A plaintext session never takes over an agency that spoke over TLS: not
// its live session, nor after it ended.
func TestOwners_PlaintextNeverFencesTLS(t *testing.T) {
	t.Parallel()
	o := newOwners(func(c net.Conn) { c.Close() })
	a, b := net.Pipe()
	defer b.Close()
	_, release, err := o.acquire(context.Background(), 1, a, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.acquire(context.Background(), 1, b, false); !errors.Is(err, errTLSAgency) {
		t.Fatalf("plaintext over a live TLS session: %v", err)
	}
	release()
	if _, _, err := o.acquire(context.Background(), 1, b, false); !errors.Is(err, errTLSAgency) {
		t.Fatalf("plaintext after the TLS session ended: %v", err)
	}
	// Other agencies, and TLS sessions of the same one, are not affected.
	if _, rel, err := o.acquire(context.Background(), 2, b, false); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
	if replaced, rel, err := o.acquire(context.Background(), 1, b, true); err != nil || replaced {
		t.Fatalf("a new TLS session: replaced %v, %v", replaced, err)
	} else {
		rel()
	}
}
