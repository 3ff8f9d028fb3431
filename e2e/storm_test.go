package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
	"github.com/loteria-nacional/tp0/store"
)

// runSwarm runs agencies × bets real agencies in this process against c and
// returns the result once every agency holds its winners.
func runSwarm(t *testing.T, c *central, agencies, bets int) <-chan swarmDone {
	t.Helper()
	out := make(chan swarmDone, 1)
	go func() {
		res, err := swarm.Run(context.Background(), swarm.Config{Addr: c.addr, Agencies: agencies, Bets: bets, Window: 2,
			RetryTimeout: 5 * time.Minute})
		out <- swarmDone{res, err}
	}()
	return out
}

type swarmDone struct {
	res swarm.Result
	err error
}

// checkSwarm verifies the store after a swarm run: every bet exactly once,
// every agency's winners as the generator says.
func checkSwarm(t *testing.T, db string, agencies, bets int, res swarm.Result) {
	t.Helper()
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Round()
	if err != nil {
		t.Fatal(err)
	}
	if r.Bets != uint64(agencies*bets) {
		t.Fatalf("%d bets stored, want %d", r.Bets, agencies*bets)
	}
	want := swarm.Expected(agencies, bets)
	for a := 1; a <= agencies; a++ {
		if r.Committed[a] != uint64(bets) || len(res.Winners[a]) != want[a] {
			t.Fatalf("agency %d: %d committed, %d winners; want %d, %d", a, r.Committed[a], len(res.Winners[a]), bets, want[a])
		}
	}
}

// A reconnect storm: 1,000 agencies in flight when the central is killed
// (-9) and restarted. Every agency resumes and finishes exactly once.
func TestStorm_KillCentralUnderThousandAgencies(t *testing.T) {
	if testing.Short() {
		t.Skip("storm test skipped in -short mode")
	}
	const agencies, bets = 1000, 60
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, agencies, "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m")
	done := runSwarm(t, c, agencies, bets)
	c.waitLine(`action: agencia_finalizada \| result: success .*finalizadas: 50 `, 5*time.Minute)
	c.cmd.Process.Kill()
	c.wait(time.Minute)
	checkAfterKill(t, db)
	c = restartCentral(t, c, agencies, "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m")
	d := <-done
	if d.err != nil {
		t.Fatal(d.err)
	}
	c.waitLine(`action: sorteo \| result: success`, time.Minute)
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
	checkSwarm(t, db, agencies, bets, d.res)
	t.Logf("storm: %s, %d reconnects, peak %.0f reconnects/s", d.res.Elapsed.Round(time.Millisecond), d.res.Retries, d.res.PeakRetryRate)
}

// Waiting agencies give back their connection slot: more agencies than
// MAX_CONNECTIONS still complete a round (it once deadlocked: the first ones
// held every slot while they waited for the draw).
func TestStorm_MoreAgenciesThanConnections(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprintf("MaxConnections%d", limit), func(t *testing.T) {
			const agencies, bets = 12, 30
			db := filepath.Join(t.TempDir(), "bets.db")
			c := startCentral(t, db, agencies, fmt.Sprintf("MAX_CONNECTIONS=%d", limit))
			d := <-runSwarm(t, c, agencies, bets)
			if d.err != nil {
				t.Fatal(d.err)
			}
			c.signal(syscall.SIGTERM)
			c.wait(time.Minute)
			checkSwarm(t, db, agencies, bets, d.res)
		})
	}
}
