package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

// killPoint is a moment to kill -9 the central: after the n-th line of the
// given phase printed by the current central process.
type killPoint struct {
	phase string // batch, finish, last-finish, draw, winners
	n     int
}

var phaseLine = map[string]string{
	"batch":       `action: apuesta_recibida \| result: success`,
	"finish":      `action: agencia_finalizada \| result: success`,
	"last-finish": `action: agencia_finalizada \| result: success .*finalizadas: 5 \|`,
	"draw":        `action: sorteo \| result: success`,
	"winners":     `action: consulta_ganadores \| result: success \| agencia`,
}

func (k killPoint) String() string { return fmt.Sprintf("%s#%d", k.phase, k.n) }

// chaosPlans are the runs: each kills the central at its points in turn,
// restarting it after each kill. make test runs the first plan (5 points);
// TP0_CHAOS=1 (make chaos) runs them all (25 points over ingest, finish and draw).
var chaosPlans = [][]killPoint{
	{{"batch", 1}, {"batch", 60}, {"finish", 1}, {"last-finish", 1}, {"winners", 2}},
	{{"batch", 10}, {"batch", 120}, {"batch", 5}, {"finish", 2}, {"draw", 1}},
	{{"batch", 30}, {"batch", 30}, {"batch", 30}, {"batch", 30}, {"last-finish", 1}},
	{{"batch", 200}, {"finish", 1}, {"finish", 1}, {"draw", 1}, {"winners", 1}},
	{{"batch", 2}, {"batch", 90}, {"finish", 3}, {"winners", 3}, {"winners", 1}},
}

func chaosData(t *testing.T) (string, map[int]int) {
	if officialDir != "" {
		return officialDir, map[int]int{1: 2, 2: 3, 3: 3, 4: 2, 5: 0}
	}
	t.Logf("official dataset absent: chaos on generated data")
	return genData, expectedWinners(t, genData, 5)
}

func TestChaos_KillCentral(t *testing.T) {
	plans := chaosPlans[:1]
	if os.Getenv("TP0_CHAOS") == "1" {
		plans = chaosPlans
	}
	dataDir, want := chaosData(t)
	hit := 0
	for i, plan := range plans {
		t.Run(fmt.Sprintf("Run%d", i+1), func(t *testing.T) {
			hit += runChaos(t, dataDir, want, plan)
		})
	}
	t.Logf("chaos: %d runs, %d kill points hit", len(plans), hit)
}

// runChaos runs 5 agencies to the end while the central is killed at each
// point of plan; it returns how many points were hit before the run ended.
func runChaos(t *testing.T, dataDir string, want map[int]int, plan []killPoint) int {
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 5)
	agencies := make([]*proc, 6)
	for i := 1; i <= 5; i++ {
		agencies[i] = startAgency(t, c, i, dataDir, "CLI_RECONNECT_ATTEMPTS=500")
	}
	hit, draws := 0, 0
	for _, k := range plan {
		if !waitKillPoint(c, agencies, k) {
			t.Logf("kill point %s not reached: the run ended first", k)
			break
		}
		c.signal(syscall.SIGKILL)
		c.wait(30 * time.Second)
		hit++
		draws += len(c.grep(phaseLine["draw"]))
		checkAfterKill(t, db)
		c = restartCentral(t, c, 5)
	}
	waitAgencies(t, agencies, want)
	stopCentral(t, c)
	// The draw runs once per round: a restarted central answers from the
	// stored result (a kill between storing it and logging it leaves none).
	if draws += len(c.grep(phaseLine["draw"])); draws > 1 {
		t.Fatalf("the draw ran %d times over the restarts", draws)
	}
	// A restart after every agency had its winners archives the round (and
	// starts an empty one): the round to check is then the archived file.
	if line := c.grep(`action: archivar_ronda \| result: success`); len(line) > 0 {
		db = regexp.MustCompile(`archivo: (\S+)`).FindStringSubmatch(line[0])[1]
		t.Logf("round archived by the last restart: checking %s", filepath.Base(db))
	}
	rep := verifyStore(t, db, dataDir, 5)
	if !rep.round.Drawn || len(rep.round.Delivered) != 5 {
		t.Fatalf("round at the end: drawn %v, delivered to %v", rep.round.Drawn, rep.round.Delivered)
	}
	wantTotal := 0
	for a := 1; a <= 5; a++ {
		wantTotal += len(fileBets(t, dataDir, a))
	}
	if rep.total != wantTotal {
		t.Fatalf("stored %d bets, want %d", rep.total, wantTotal)
	}
	return hit
}

// waitKillPoint waits for k's line in the current central, or for every
// agency to exit (false).
func waitKillPoint(c *central, agencies []*proc, k killPoint) bool {
	rx := regexp.MustCompile(phaseLine[k.phase])
	deadline := time.After(5 * time.Minute)
	for {
		c.mu.Lock()
		n := 0
		for _, l := range c.lines {
			if rx.MatchString(l) {
				n++
			}
		}
		grew := c.grew
		c.mu.Unlock()
		if n >= k.n {
			return true
		}
		all := true
		for _, a := range agencies[1:] {
			select {
			case <-a.done:
			default:
				all = false
			}
		}
		if all {
			return false
		}
		select {
		case <-grew:
		case <-c.done:
			c.t.Fatalf("central exited by itself before kill point %s", k)
		case <-deadline:
			c.t.Fatalf("kill point %s not reached in time", k)
		case <-time.After(100 * time.Millisecond): // re-check agencies' exit
		}
	}
}

// checkAfterKill opens the store a killed central left: it must open and pass
// bbolt's consistency check.
func checkAfterKill(t *testing.T, db string) {
	t.Helper()
	s, err := store.Open(db, store.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("store after kill -9 does not open: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("store after kill -9 fails the consistency check: %v", err)
	}
}

// kill -9 an agency mid-stream and start it again: it resumes from the
// central's committed count and the result is exact.
func TestChaos_KillAgency(t *testing.T) {
	dataDir, want := chaosData(t)
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 5)
	agencies := make([]*proc, 6)
	for i := 1; i <= 5; i++ {
		agencies[i] = startAgency(t, c, i, dataDir)
	}
	agencies[1].waitLine(`action: progreso \| result: in_progress`, time.Minute)
	agencies[1].signal(syscall.SIGKILL)
	agencies[1].wait(30 * time.Second)
	agencies[1] = startAgency(t, c, 1, dataDir, "CLI_RECONNECT_ATTEMPTS=100")
	waitAgencies(t, agencies, want)
	resumed := c.grep(`action: hello \| result: success .*agencia: 1 \|`)
	if len(resumed) != 2 || !strings.Contains(resumed[1], "confirmadas: ") || strings.Contains(resumed[1], "confirmadas: 0 ") {
		t.Fatalf("agency 1 did not resume from a committed count: %v", resumed)
	}
	stopCentral(t, c)
	verifyStore(t, db, dataDir, 5)
}
