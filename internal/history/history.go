// Package history records what agencies did against the central and were
// told (agency.History), and checks it with porcupine against a model of
// the round: per agency an append-only sequence of bets, where a batch
// from first to first+n acknowledged with committed c means the agency's
// sequence held exactly c bets at some instant of the call (every earlier
// bet present once, in order), a Welcome's resume offset is the sequence's
// length at an instant of the session's start (so it never moves back
// past what was acknowledged), a refused gap stored nothing, and a batch
// whose outcome is unknown may or may not have been stored, at any time
// after it was sent. The end-to-end tests record every agency's history
// (TP0_TEST_HISTORY in a test build of the agency) and check them after
// their faults; a history that is not linearizable writes porcupine's
// visualization beside the test's logs.
package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/loteria-nacional/tp0/agency"
)

// The kinds of events.
const (
	KindBatch   = "batch"
	KindResume  = "resume"
	KindWinners = "winners"
)

// Event is one line of a history file.
type Event struct {
	Agency    int      `json:"agency"`
	Kind      string   `json:"kind"`
	First     uint64   `json:"first,omitempty"`
	N         uint64   `json:"n,omitempty"`
	Call      int64    `json:"call"`             // Unix ns
	Return    int64    `json:"return,omitempty"` // Unix ns; 0: never answered
	Committed uint64   `json:"committed"`
	Outcome   string   `json:"outcome,omitempty"` // a batch's: acked, refused, unknown
	Winners   []string `json:"winners,omitempty"`
}

// Writer writes one agency's history as JSON lines: an agency.History.
type Writer struct {
	agency int
	mu     sync.Mutex
	f      *os.File
	enc    *json.Encoder
}

var _ agency.History = (*Writer)(nil)

// Create creates the history file of agency at path.
func Create(path string, agencyID int) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &Writer{agency: agencyID, f: f, enc: json.NewEncoder(f)}, nil
}

func (w *Writer) write(e Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e.Agency = w.agency
	w.enc.Encode(e) // one write(2) per line: a kill -9 leaves whole lines in the page cache
}

// Resumed records a Welcome.
func (w *Writer) Resumed(asked, told time.Time, committed uint64) {
	w.write(Event{Kind: KindResume, Call: asked.UnixNano(), Return: told.UnixNano(), Committed: committed})
}

// Batch records a batch's outcome.
func (w *Writer) Batch(first uint64, n int, sent, answered time.Time, committed uint64, outcome agency.Outcome) {
	e := Event{Kind: KindBatch, First: first, N: uint64(n), Call: sent.UnixNano(), Committed: committed}
	switch outcome {
	case agency.Acked:
		e.Outcome, e.Return = "acked", answered.UnixNano()
	case agency.Refused:
		e.Outcome, e.Return = "refused", answered.UnixNano()
	default:
		e.Outcome = "unknown"
	}
	w.write(e)
}

// Winners records the winners the agency took.
func (w *Writer) Winners(docs []string) {
	now := time.Now().UnixNano()
	w.write(Event{Kind: KindWinners, Call: now, Return: now, Winners: docs})
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// Read reads history files (a line cut short by a kill, last in its file,
// is left out: its operation is as if never recorded).
func Read(paths ...string) ([]Event, error) {
	var out []Event
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var last error
		for sc.Scan() {
			if last != nil {
				f.Close()
				return nil, last
			}
			var e Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				last = fmt.Errorf("%s: %w", p, err)
				continue
			}
			out = append(out, e)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// input and output are an operation's, as the model sees them.
type input struct {
	kind     string
	first, n uint64
}

type output struct {
	outcome   string
	committed uint64
}

// model is the round's per agency: the state is how many of the agency's
// bets are stored.
var model = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			by[op.ClientId] = append(by[op.ClientId], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() []any { return []any{uint64(0)} },
	Step: func(state, in, out any) []any {
		s, i, o := state.(uint64), in.(input), out.(output)
		if i.kind == KindResume {
			if o.committed == s {
				return []any{s}
			}
			return nil
		}
		next := max(s, i.first+i.n)
		switch {
		case o.outcome == "unknown" && i.first > s:
			return []any{s} // a gap stores nothing
		case o.outcome == "unknown":
			return []any{s, next} // stored, or not
		case o.outcome == "refused":
			if i.first > s {
				return []any{s} // a gap
			}
			return nil // a batch the agency's sequence continues is never refused
		case i.first > s:
			return nil // acknowledged across a gap
		case o.committed == next:
			return []any{next}
		}
		return nil
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		if i.kind == KindResume {
			return fmt.Sprintf("resume → %d", o.committed)
		}
		if o.outcome == "acked" {
			return fmt.Sprintf("batch [%d, %d) → acked, %d", i.first, i.first+i.n, o.committed)
		}
		return fmt.Sprintf("batch [%d, %d) → %s", i.first, i.first+i.n, o.outcome)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%d stored", state.(uint64)) },
}

// ErrNotLinearizable means a history has no order that the model allows:
// the central acknowledged, resumed or refused as no round could.
var ErrNotLinearizable = errors.New("the agencies' history is not linearizable")

// Check checks events with porcupine against the round's model (winners
// events are checked by the caller against the draw), within timeout. A
// history that is not linearizable is ErrNotLinearizable, and porcupine's
// visualization of it is written to html.
func Check(events []Event, html string, timeout time.Duration) error {
	var ops []porcupine.Operation
	for _, e := range events {
		if e.Kind == KindWinners {
			continue
		}
		ret := e.Return
		if ret == 0 {
			ret = math.MaxInt64 // never answered: it may take effect at any time after its call
		}
		ops = append(ops, porcupine.Operation{ClientId: e.Agency, Input: input{kind: e.Kind, first: e.First, n: e.N},
			Call: e.Call, Output: output{outcome: e.Outcome, committed: e.Committed}, Return: ret})
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	result, info := porcupine.CheckOperationsVerbose(model.ToModel(), ops, timeout)
	switch result {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("the checker did not finish within %s on %d operations", timeout, len(ops))
	}
	err := fmt.Errorf("%w (%d operations)", ErrNotLinearizable, len(ops))
	if html != "" {
		if verr := porcupine.VisualizePath(model.ToModel(), info, html); verr == nil {
			err = fmt.Errorf("%w: see %s", err, html)
		}
	}
	return err
}

// Winners returns, per agency, the winners each was told last.
func Winners(events []Event) map[int][]string {
	out := map[int][]string{}
	for _, e := range events {
		if e.Kind == KindWinners {
			out[e.Agency] = e.Winners
		}
	}
	return out
}

// Summary says how many operations of each outcome a history holds.
func Summary(events []Event) string {
	count := map[string]int{}
	for _, e := range events {
		k := e.Kind
		if e.Outcome != "" {
			k += " " + e.Outcome
		}
		count[k]++
	}
	var parts []string
	for k, n := range count {
		parts = append(parts, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
