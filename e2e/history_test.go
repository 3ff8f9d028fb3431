package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/history"
	"github.com/loteria-nacional/tp0/lottery"
)

// histories names one history file per agency in dir, and the environment
// that makes agency id record into its file.
type histories struct {
	dir string
}

func newHistories(t *testing.T) histories { return histories{dir: t.TempDir()} }

func (h histories) file(id int) string {
	return filepath.Join(h.dir, fmt.Sprintf("agency-%d.jsonl", id))
}

func (h histories) env(id int) string { return "TP0_TEST_HISTORY=" + h.file(id) }

// check reads agencies 1..n's histories and checks them with porcupine
// against the round's model; a history that is not linearizable fails the
// test and leaves porcupine's visualization in the test's log directory.
// Then every agency's winners, as it was told them, are the documents of
// its winning bets in data.
func (h histories) check(t *testing.T, n int, data string) {
	t.Helper()
	var ids []int
	for id := 1; id <= n; id++ {
		ids = append(ids, id)
	}
	h.checkAgencies(t, data, ids...)
}

// checkAgencies is check for the histories of agencies ids only (those
// that record one).
func (h histories) checkAgencies(t *testing.T, data string, ids ...int) {
	t.Helper()
	events, err := h.read(ids...)
	if err != nil {
		t.Fatal(err)
	}
	html := filepath.Join(os.TempDir(), fmt.Sprintf("tp0-history-%s-%d.html", filepath.Base(h.dir), time.Now().UnixNano()))
	if err := history.Check(events, html, 2*time.Minute); err != nil {
		t.Fatalf("history (%s): %v", history.Summary(events), err)
	}
	told := history.Winners(events)
	for _, id := range ids {
		var want []string
		for _, b := range fileBets(t, data, id) {
			if lottery.HasWon(b) {
				want = append(want, b.Document)
			}
		}
		got := slices.Clone(told[id])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("agency %d was told %d winners %v, its winning bets are %d: %v", id, len(got), got, len(want), want)
		}
	}
	t.Logf("history: %s", history.Summary(events))
}

func (h histories) read(ids ...int) ([]history.Event, error) {
	var files []string
	for _, id := range ids {
		files = append(files, h.file(id))
	}
	return history.Read(files...)
}

// The checker must be able to fail: a central that acknowledges a batch it
// never stores (a test build's fault) leaves a history porcupine refuses,
// with its visualization written; the same agencies against a sound
// central leave one it accepts.
func TestHistory_CatchesAnAckWithoutCommit(t *testing.T) {
	t.Parallel()
	run := func(env ...string) histories {
		h := newHistories(t)
		c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 2, env...)
		agencies := []*proc{nil}
		for id := 1; id <= 2; id++ {
			agencies = append(agencies, startAgency(t, c, id, genData, h.env(id), "CLI_BATCH_MAXAMOUNT=100"))
		}
		for _, a := range agencies[1:] {
			a.wait(2 * time.Minute) // the faulty central's agencies may give up
		}
		return h
	}

	h := run("TP0_TEST_ACK_WITHOUT_COMMIT=7")
	events, err := h.read(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	html := filepath.Join(t.TempDir(), "history.html")
	err = history.Check(events, html, time.Minute)
	if !errors.Is(err, history.ErrNotLinearizable) {
		t.Fatalf("a central that acks without storing: the checker says %v (%s)", err, history.Summary(events))
	}
	if fi, serr := os.Stat(html); serr != nil || fi.Size() == 0 {
		t.Fatalf("no visualization written: %v", serr)
	}
	t.Logf("caught: %v", err)

	run().check(t, 2, genData)
}
