package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// stopCentral sends SIGTERM and checks a clean exit with every resource closed.
func stopCentral(t *testing.T, c *central) {
	t.Helper()
	sent := time.Now()
	c.signal(sigterm)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Fatalf("central exited %d after SIGTERM", code)
	}
	t.Logf("central exited %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	for _, l := range []string{"close_listener", "close_store", "shutdown"} {
		c.waitLine(`action: `+l+` \| result: success`, time.Second)
	}
}

// SIGTERM to the central while two agencies stream: it exits 0 having closed
// everything; the store opens cleanly with every acknowledged batch; a new
// central on the same store lets the agencies resume and finish exactly once.
func TestShutdown_CentralWhileStreaming(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 2)
	a1 := startAgency(t, c, 1, bigData, "CLI_RECONNECT_ATTEMPTS=200")
	a2 := startAgency(t, c, 2, bigData, "CLI_RECONNECT_ATTEMPTS=200")
	c.waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	stopCentral(t, c)
	c.waitLine(`action: close_connection \| result: success`, time.Second)
	rep := verifyStore(t, db, bigData, 2)
	t.Logf("interrupted with %d bets stored", rep.total)
	a1.waitLine(`action: reconectar \| result: in_progress \| intento: 1`, time.Minute)

	// Same port is not needed: agencies are told the address at start, so
	// the new central must listen where they dial.
	c2 := restartCentral(t, c, 2)
	for i, a := range []*proc{a1, a2} {
		if code := a.wait(3 * time.Minute); code != 0 {
			t.Fatalf("agency %d exited %d", i+1, code)
		}
	}
	c2.waitLine(`action: recuperar_ronda \| result: success \| apuestas: \d+ \| agencias_finalizadas: 0`, time.Second)
	stopCentral(t, c2)
	want := len(fileBets(t, bigData, 1)) + len(fileBets(t, bigData, 2))
	if rep := verifyStore(t, db, bigData, 2); rep.total != want {
		t.Fatalf("stored %d bets, want %d", rep.total, want)
	}
}

// SIGTERM to the central while agencies wait for winners (the draw waits for
// a third agency): waiting agencies get an error reply, the central exits 0.
// After a restart, the finished agencies are remembered and the draw runs when
// the last one finishes.
func TestShutdown_CentralWhileWaitingForWinners(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 3)
	a1 := startAgency(t, c, 1, genData, "CLI_RECONNECT_ATTEMPTS=200")
	a2 := startAgency(t, c, 2, genData, "CLI_RECONNECT_ATTEMPTS=200")
	a1.waitLine(`action: fin_envio \| result: success`, time.Minute)
	a2.waitLine(`action: fin_envio \| result: success`, time.Minute)
	stopCentral(t, c)
	c.waitLine(`action: consulta_ganadores \| result: fail .*codigo: unavailable`, time.Second)
	a1.waitLine(`action: reconectar \| result: in_progress`, time.Minute)

	c2 := restartCentral(t, c, 3)
	c2.waitLine(`action: recuperar_ronda \| result: success \| apuestas: \d+ \| agencias_finalizadas: 2`, time.Second)
	a3 := startAgency(t, c2, 3, genData)
	want := expectedWinners(t, genData, 3)
	waitAgencies(t, []*proc{nil, a1, a2, a3}, want)
	stopCentral(t, c2)
	verifyStore(t, db, genData, 3)
}

// SIGTERM to an agency mid-stream: it exits 0 after closing its connection
// and its file; started again, it resumes where the central says and the
// store ends with every bet exactly once.
func TestShutdown_AgencyWhileStreaming(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 1)
	a := startAgency(t, c, 1, bigData)
	a.waitLine(`action: progreso \| result: in_progress`, time.Minute)
	a.signal(sigterm)
	if code := a.wait(10 * time.Second); code != 0 {
		t.Fatalf("agency exited %d after SIGTERM", code)
	}
	for _, l := range []string{"close_connection", "close_file", "shutdown"} {
		a.waitLine(`action: `+l+` \| result: success`, time.Second)
	}
	again := startAgency(t, c, 1, bigData)
	if code := again.wait(3 * time.Minute); code != 0 {
		t.Fatalf("restarted agency exited %d", code)
	}
	c.waitLine(`action: hello \| result: success .*agencia: 1 .*confirmadas: [1-9]`, time.Second)
	stopCentral(t, c)
	if rep := verifyStore(t, db, bigData, 1); rep.total != len(fileBets(t, bigData, 1)) {
		t.Fatalf("stored %d bets, want %d", rep.total, len(fileBets(t, bigData, 1)))
	}
}

// restartCentral starts a new central on the old one's address and store.
func restartCentral(t *testing.T, old *central, agencies int, env ...string) *central {
	t.Helper()
	port := old.addr[len("127.0.0.1:"):]
	p := start(t, "server", t.TempDir(), append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=" + port,
		"AGENCIES=" + itoa(agencies), "DB_PATH=" + old.dbPath}, env...)...)
	p.waitLine(`action: listen \| result: success`, 20*time.Second)
	return &central{proc: p, addr: old.addr, dbPath: old.dbPath}
}

func itoa(n int) string { return strconv.Itoa(n) }
