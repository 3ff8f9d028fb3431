package central

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
)

// flakyStore fails SaveDraw the first failures times, as a disk whose
// fdatasync fails once.
type flakyStore struct {
	drawStore
	mu       sync.Mutex
	failures int
	calls    int
}

var errIO = errors.New("input/output error")

func (f *flakyStore) SaveDraw(at time.Time, agencies int, winners map[int][]string) error {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.failures
	f.mu.Unlock()
	if fail {
		return errIO
	}
	return f.drawStore.SaveDraw(at, agencies, winners)
}

// A draw that fails (an I/O error storing it) is retried until it is
// stored; those waiting for winners get them, not an internal error.
func TestDraw_RetriedAfterTransientFailure(t *testing.T) {
	t.Parallel()
	c := newTestCentral(t, 1)
	logs := &testkit.Buffer{}
	c.log = logformat.New(logs, logging.INFO, "draw")
	winner := lottery.Bet{Agency: 1, FirstName: "Ana", LastName: "Paz", Document: "30904465",
		Birthdate: lottery.Date{Year: 1990, Month: 1, Day: 2}, Number: lottery.WinnerNumber}
	if _, err := c.store.Append(1, 0, lottery.BetSlice([]lottery.Bet{winner})); err != nil {
		t.Fatal(err)
	}
	flaky := &flakyStore{drawStore: c.draws, failures: 2}
	c.draws = flaky
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, start := c.barrier().finish(1); !start {
		t.Fatal("the last finish did not start the draw")
	}
	c.startDraw(ctx)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	docs, err := c.barrier().wait(wctx, nil, 1)
	if err != nil || len(docs) != 1 || docs[0] != "30904465" {
		t.Fatalf("winners %v, %v", docs, err)
	}
	if flaky.calls != 3 {
		t.Fatalf("SaveDraw called %d times, want 3", flaky.calls)
	}
	for _, want := range []string{"action: sorteo | result: fail | intento: 1 |", "action: sorteo | result: fail | intento: 2 |",
		"action: sorteo | result: success | ganadores: 1"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in:\n%s", want, logs)
		}
	}
	cancel()
	c.wg.Wait()
}

func TestAcceptDelay(t *testing.T) {
	t.Parallel()
	prev := time.Duration(0)
	for n := 1; n <= 20; n++ {
		d := acceptDelay(n)
		if d < prev || d > time.Second || d < 5*time.Millisecond {
			t.Fatalf("acceptDelay(%d) = %s after %s", n, d, prev)
		}
		prev = d
	}
	if acceptDelay(20) != time.Second {
		t.Fatalf("acceptDelay does not reach 1s: %s", acceptDelay(20))
	}
}

func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	nofile, ok := openFileLimit()
	if !ok {
		t.Skip("no RLIMIT_NOFILE here")
	}
	if n, lim := ConnectionLimit(1<<20, false); lim != nofile || uint64(n)+fdReserve(nofile, false) != nofile {
		t.Fatalf("a huge MAX_CONNECTIONS gives %d (nofile %d)", n, lim)
	}
	if n, _ := ConnectionLimit(7, false); n != 7 {
		t.Fatalf("MAX_CONNECTIONS=7 gives %d", n)
	}
	if n, _ := ConnectionLimit(0, false); n < 1 || n > autoMaxConns {
		t.Fatalf("derived MAX_CONNECTIONS %d", n)
	}
}
