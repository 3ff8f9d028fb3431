package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// A batch with one invalid bet: nothing of it stored, an error reply naming
// the bet, a fail line; the session goes on and a good batch then lands.
func TestCentral_InvalidBetBatch(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 2)
	cl := dial(t, c.addr)
	cl.hello(1)
	bets := testkit.Bets(1, 5)
	bets[3].Number = 10000
	cl.send(&protocol.Batch{Agency: 1, First: 0, Bets: bets})
	e := cl.expectError(protocol.CodeInvalidBet)
	if e.Index != 3 {
		t.Fatalf("error names bet %d, want 3: %v", e.Index, e)
	}
	c.waitLine(`action: apuesta_recibida \| result: fail \| cantidad: 5`, 5*time.Second)
	cl.send(&protocol.Batch{Agency: 1, First: 0, Bets: testkit.Bets(1, 2)})
	m, err := cl.recv()
	if ack, ok := m.(*protocol.Ack); err != nil || !ok || ack.Stored != 2 || ack.Committed != 2 {
		t.Fatalf("good batch after a bad one: %#v, %v", m, err)
	}
	c.signal(sigterm)
	c.wait(10 * time.Second)
	s, err := store.Open(c.dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.Count(); n != 2 {
		t.Fatalf("%d bets stored, want only the 2 of the good batch", n)
	}
}

func TestCentral_ProtocolErrors(t *testing.T) {
	t.Parallel()
	// Each subtest uses its own agency: a session ends a moment after its
	// fatal error reply, and a new hello for the same agency could meet it.
	// (A bet for another agency and winners before finishing: TestHostile.)
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 5)
	t.Run("UnknownAgency", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.send(&protocol.Hello{Agency: 6, Mode: protocol.ModeCSV})
		cl.expectError(protocol.CodeUnknownAgency)
		cl.expectClosed()
		c.waitLine(`action: hello \| result: fail .*agency 6 is outside 1..5`, 5*time.Second)
	})
	t.Run("SecondSessionTakesOver", func(t *testing.T) {
		// Fencing: a new session for an agency ends the old one (a dead
		// connection must not lock the agency out) and is logged as such.
		first := dial(t, c.addr)
		first.hello(2)
		cl := dial(t, c.addr)
		if w := cl.hello(2); w.Committed != 0 {
			t.Fatalf("second session welcomed with %d committed", w.Committed)
		}
		first.expectClosed()
		c.waitLine(`action: hello \| result: success .*agencia: 2 .*reemplaza: true`, 5*time.Second)
		cl.conn.Close()
	})
	t.Run("FinishWithoutHello", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.send(&protocol.Finish{Total: 0})
		cl.expectError(protocol.CodeUnexpected)
		c.waitLine(`result: fail .*finish before hello`, 5*time.Second)
	})
	t.Run("BetsAfterFinish", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.hello(4)
		cl.send(&protocol.Batch{Agency: 4, Bets: testkit.Bets(4, 3)})
		if _, err := cl.recv(); err != nil {
			t.Fatal(err)
		}
		cl.send(&protocol.Finish{Total: 3})
		if m, err := cl.recv(); err != nil || m.Kind() != protocol.KindFinished {
			t.Fatalf("finish answered %#v, %v", m, err)
		}
		cl.send(&protocol.Batch{Agency: 4, First: 3, Bets: testkit.Bets(4, 1)})
		cl.expectError(protocol.CodeFinished)
		c.waitLine(`action: apuesta_recibida \| result: fail .*finished`, 5*time.Second)
	})
	t.Run("IncompleteFinish", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.hello(5)
		cl.send(&protocol.Finish{Total: 10})
		cl.expectError(protocol.CodeIncomplete)
	})
	// The central kept serving through all of the above.
	if got := echo(t, c.addr, "ok\n"); got != "ok\n" {
		t.Fatalf("echo after errors: %q", got)
	}
}
