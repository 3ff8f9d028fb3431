package e2e

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// fileBets reads the bets of agency id from dataDir, as the agency sends them.
func fileBets(t *testing.T, dataDir string, id int) []lottery.Bet {
	t.Helper()
	return fileBetsAt(t, dataDir, id, time.Now())
}

// fileBetsAt is fileBets with bets validated as of today.
func fileBetsAt(t *testing.T, dataDir string, id int, today time.Time) []lottery.Bet {
	t.Helper()
	f, err := os.Open(filepath.Join(dataDir, fmt.Sprintf("agency-%d.csv", id)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]lottery.Bet, 0, len(rows))
	for _, r := range rows {
		b, err := lottery.FromFields(id, r[0], r[1], r[2], r[3], r[4])
		if err == nil && b.ValidateAt(today) == nil {
			out = append(out, b)
		}
	}
	return out
}

// storeReport is what verifyStore found.
type storeReport struct {
	total     int
	perAgency map[int]int
	round     store.Round
}

// verifyStore opens the store at dbPath after the server exited and checks:
// bbolt's consistency check passes; each agency's stored bets are, in order,
// exactly a prefix of its file's valid bets (nothing lost in the middle,
// nothing twice) whose length is its committed count; a finished agency has
// all of them.
func verifyStore(t *testing.T, dbPath, dataDir string, agencies int) storeReport {
	t.Helper()
	s, err := store.Open(dbPath, store.Options{})
	if err != nil {
		t.Fatalf("store does not open after the run: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("bbolt consistency check: %v", err)
	}
	r, err := s.Round()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int][]lottery.Bet{}
	for a := 1; a <= agencies; a++ {
		want[a] = fileBetsAt(t, dataDir, a, s.Today())
	}
	rep := storeReport{perAgency: map[int]int{}, round: r}
	for b, err := range s.LoadBets() {
		if err != nil {
			t.Fatal(err)
		}
		i := rep.perAgency[b.Agency]
		if i >= len(want[b.Agency]) || want[b.Agency][i] != b {
			t.Fatalf("stored bet %d of agency %d is %+v, want the file's bet %d (duplicate or out of order)", i, b.Agency, b, i)
		}
		rep.perAgency[b.Agency]++
		rep.total++
	}
	for a := 1; a <= agencies; a++ {
		if uint64(rep.perAgency[a]) != r.Committed[a] {
			t.Fatalf("agency %d: %d bets stored, committed count says %d", a, rep.perAgency[a], r.Committed[a])
		}
		if r.Finished[a] && rep.perAgency[a] != len(want[a]) {
			t.Fatalf("agency %d finished with %d of its %d bets stored", a, rep.perAgency[a], len(want[a]))
		}
	}
	return rep
}

// expectedWinners counts each agency's 7574 bets in its file.
func expectedWinners(t *testing.T, dataDir string, agencies int) map[int]int {
	out := map[int]int{}
	for a := 1; a <= agencies; a++ {
		for _, b := range fileBets(t, dataDir, a) {
			if lottery.HasWon(b) {
				out[a]++
			}
		}
	}
	return out
}
