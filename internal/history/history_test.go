package history

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func batch(first, n, call, ret, committed uint64, outcome string) Event {
	return Event{Agency: 1, Kind: KindBatch, First: first, N: n, Call: int64(call), Return: int64(ret), Committed: committed, Outcome: outcome}
}

func resume(call, ret, committed uint64) Event {
	return Event{Agency: 1, Kind: KindResume, Call: int64(call), Return: int64(ret), Committed: committed}
}

// The checker accepts what a round allows (acknowledgements in order,
// batches whose outcome is unknown stored or not, a resume at the stored
// length, a refused gap) and refuses what none does, writing porcupine's
// visualization.
func TestCheck(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		events []Event
		ok     bool
	}{
		"InOrder":           {[]Event{resume(0, 1, 0), batch(0, 10, 2, 3, 10, "acked"), batch(10, 10, 4, 5, 20, "acked")}, true},
		"UnknownNotStored":  {[]Event{resume(0, 1, 0), batch(0, 10, 2, 0, 0, "unknown"), resume(5, 6, 0), batch(0, 10, 7, 8, 10, "acked")}, true},
		"UnknownStored":     {[]Event{resume(0, 1, 0), batch(0, 10, 2, 0, 0, "unknown"), resume(5, 6, 10), batch(10, 5, 7, 8, 15, "acked")}, true},
		"RetryStoredBefore": {[]Event{batch(0, 10, 2, 3, 10, "acked"), batch(0, 10, 4, 5, 10, "acked")}, true},
		"GapRefused":        {[]Event{batch(5, 10, 2, 3, 0, "refused"), resume(4, 6, 0)}, true},
		"AckedThenLost":     {[]Event{batch(0, 10, 2, 3, 10, "acked"), resume(5, 6, 0)}, false},
		"OffsetMovesBack":   {[]Event{resume(0, 1, 10), resume(5, 6, 4)}, false},
		"AckedOtherCount":   {[]Event{batch(0, 10, 2, 3, 12, "acked")}, false},
		"RefusedInSequence": {[]Event{resume(0, 1, 0), batch(0, 10, 2, 3, 0, "refused")}, false},
	} {
		html := filepath.Join(t.TempDir(), "history.html")
		err := Check(tt.events, html, 10*time.Second)
		if tt.ok != (err == nil) {
			t.Errorf("%s: %v", name, err)
		}
		if !tt.ok {
			if _, serr := os.Stat(html); !errors.Is(err, ErrNotLinearizable) || serr != nil {
				t.Errorf("%s: %v, visualization: %v", name, err, serr)
			}
		}
	}
}

// A history written by a Writer reads back.
func TestWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "h.jsonl")
	w, err := Create(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	w.Resumed(now, now.Add(time.Millisecond), 0)
	w.Winners([]string{"30904465"})
	w.Close()
	events, err := Read(path)
	if err != nil || len(events) != 2 || events[0].Agency != 3 || Winners(events)[3][0] != "30904465" {
		t.Fatalf("%+v, %v", events, err)
	}
}
