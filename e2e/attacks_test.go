package e2e

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/protocol"
)

// Attacks by a peer that speaks for an agency that is not its own. Without
// TLS the central cannot tell who speaks, but the real agency can tell that
// what the central holds is not its bets: it fails loudly (exit 1) instead of
// exiting 0 with bets unstored. With TLS (tls_test.go) the attacker is
// refused outright.

// Fake finish: someone finishes agency 3 with the count Welcome reveals.
func TestAttack_FakeFinishIsNoticed(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 3)
	cl := dial(t, c.addr)
	w := cl.hello(3)
	cl.send(&protocol.Finish{Total: w.Committed})
	if m, err := cl.recv(); err != nil || m.Kind() != protocol.KindFinished {
		t.Fatalf("finish answered %#v, %v", m, err)
	}
	a := startAgency(t, c, 3, genData)
	if code := a.wait(time.Minute); code == 0 {
		t.Fatal("agency 3 exited 0 though none of its bets are stored")
	}
	a.waitLine(`action: agencia \| result: fail \| error: the central says agency 3 finished with 0 bets stored, but .* has \d+ valid bets`, time.Second)
}

// Fake bets: five bets stored as agency 2 before it starts.
func TestAttack_FakeBetsAreNoticed(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 2)
	cl := dial(t, c.addr)
	cl.hello(2)
	fake := testkit.Bets(2, 5)
	for i := range fake {
		fake[i].Number = 7574
	}
	cl.send(&protocol.Batch{Agency: 2, Bets: fake})
	if _, err := cl.recv(); err != nil {
		t.Fatal(err)
	}
	cl.conn.Close()
	a := startAgency(t, c, 2, genData)
	if code := a.wait(time.Minute); code == 0 {
		t.Fatal("agency 2 exited 0 skipping five of its rows")
	}
	a.waitLine(`action: agencia \| result: fail \| error: the 5 bets the central holds for agency 2 are not the first 5 valid bets .*digest mismatch`, time.Second)
}

// Lock-out: a session held open for agency 2 (an attacker's, or a dead
// connection the central has not noticed) no longer keeps the real agency
// out: its hello takes the agency over, and it finishes exactly once.
func TestAttack_HeldSessionIsTakenOver(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 1)
	cl := dial(t, c.addr)
	cl.hello(1)
	cl.send(&protocol.Batch{Agency: 1, First: 1 << 20, Bets: testkit.Bets(1, 1)}) // a gap: the session goes on
	cl.expectError(protocol.CodeGap)
	a := startAgency(t, c, 1, genData)
	if code := a.wait(time.Minute); code != 0 {
		t.Fatalf("agency 1 exited %d", code)
	}
	cl.expectClosed()
	c.waitLine(`action: hello \| result: success .*agencia: 1 .*reemplaza: true`, time.Second)
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
	if rep := verifyStore(t, db, genData, 1); rep.total != len(fileBets(t, genData, 1)) {
		t.Fatalf("stored %d bets, want %d", rep.total, len(fileBets(t, genData, 1)))
	}
}

// An agency whose process (and so its connection) hangs silently mid-stream
// is replaced by a new one for the same id: the new one takes over at once
// and every bet is stored exactly once.
func TestAttack_SilentAgencyReplaced(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 1)
	old := startAgency(t, c, 1, bigData)
	old.waitLine(`action: progreso \| result: in_progress`, 2*time.Minute)
	old.signal(syscall.SIGSTOP) // its socket stays open, silent
	defer old.signal(syscall.SIGKILL)
	a := startAgency(t, c, 1, bigData)
	if code := a.wait(5 * time.Minute); code != 0 {
		t.Fatalf("replacing agency exited %d", code)
	}
	a.waitLine(`action: consulta_ganadores \| result: success`, time.Second)
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
	if rep := verifyStore(t, db, bigData, 1); rep.total != len(fileBets(t, bigData, 1)) {
		t.Fatalf("stored %d bets, want %d", rep.total, len(fileBets(t, bigData, 1)))
	}
}
