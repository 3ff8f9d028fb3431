package central

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/protocol"
)

// memConn is a net.Conn over an input buffer; what the server writes is kept.
// Reads end with io.EOF once the input is consumed.
type memConn struct {
	in  io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

func newTestCentral(tb testing.TB, agencies int) *Central {
	tb.Helper()
	return newTestCentralWith(tb, agencies, nil)
}

// newTestCentralWith is newTestCentral with options edited by edit (if set).
func newTestCentralWith(tb testing.TB, agencies int, edit func(*Options)) *Central {
	tb.Helper()
	opts := NewOptions()
	opts.Agencies, opts.DBPath, opts.IdleTimeout, opts.MaxConns = agencies, filepath.Join(tb.TempDir(), "bets.db"), time.Second, 8
	opts.Logger = testkit.Logger(tb, logging.ERROR)
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// FuzzSession drives one session with arbitrary input against a temp store.
// Invariants: no panic; the bets stored equal the sum of the acks' Stored
// (nothing of a rejected batch lands); each agency's committed count equals
// its bets in the store.
func FuzzSession(f *testing.F) {
	bad := testkit.Bets(1, 3)
	bad[2].Number = 10000
	f.Add(testkit.Frames(f, &protocol.Hello{Agency: 1, Mode: protocol.ModeCSV},
		&protocol.Batch{Agency: 1, First: 0, Bets: testkit.Bets(1, 3)},
		&protocol.Batch{Agency: 1, First: 1, Bets: testkit.Bets(1, 4)[1:]}, // overlapping retry
		&protocol.Finish{Total: 4}, &protocol.WinnersRequest{}))
	f.Add(testkit.Frames(f, &protocol.Hello{Agency: 1, Mode: protocol.ModeSingle},
		&protocol.Batch{Agency: 1, First: 0, Bets: bad},
		&protocol.Batch{Agency: 1, First: 5, Bets: testkit.Bets(1, 1)},
		&protocol.Batch{Agency: 2, First: 0, Bets: testkit.Bets(2, 1)}))
	f.Add(testkit.Frames(f, &protocol.Finish{Total: 1}))
	f.Add([]byte("echo me\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newTestCentral(t, 2)
		conn := &memConn{in: bytes.NewReader(data)}
		ctx, cancel := context.WithCancel(context.Background())
		c.serveConn(ctx, conn, c.slots.take())
		cancel()
		c.wg.Wait() // a draw the session started
		acked := 0
		r := protocol.NewReader(bytes.NewReader(conn.out.Bytes()), 0)
		for {
			m, err := r.Next()
			if err != nil {
				break
			}
			if a, ok := m.(*protocol.Ack); ok {
				acked += a.Stored
			}
		}
		st := c.local.st
		round, err := st.Round()
		if err != nil {
			t.Fatal(err)
		}
		if int(round.Bets) != acked {
			t.Fatalf("%d bets stored, acks say %d", round.Bets, acked)
		}
		per := map[int]uint64{}
		for b, err := range st.LoadBets() {
			if err != nil {
				t.Fatal(err)
			}
			per[b.Agency]++
		}
		for a, n := range round.Committed {
			if per[a] != n {
				t.Fatalf("agency %d: committed %d, stored %d", a, n, per[a])
			}
		}
	})
}
