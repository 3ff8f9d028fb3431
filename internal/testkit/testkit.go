// Package testkit holds the fixtures that the tests of several packages
// share (as bbolt's internal/btesting does): valid bets, encoded frames, and
// a buffer that several goroutines may write while a test reads it.
package testkit

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/logformat"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

// Bets returns n valid bets of agency, numbered 0, 1, ... (so bet 7574,
// the winner, only when n is over 7574).
func Bets(agency, n int) []lottery.Bet {
	out := make([]lottery.Bet, n)
	for i := range out {
		out[i] = lottery.Bet{Agency: agency, FirstName: "Ana", LastName: "D'Elia", Document: "12345678",
			Birthdate: lottery.Date{Year: 1990, Month: 5, Day: 6}, Number: i % (lottery.MaxNumber + 1)}
	}
	return out
}

// Frames returns msgs encoded as consecutive frames.
func Frames(tb testing.TB, msgs ...protocol.Message) []byte {
	tb.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = protocol.Append(b, m); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// Buffer is a bytes.Buffer that goroutines may write while another reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger returns a logger of its own (no global backend) that writes its
// lines at level or above to tb.Log, so they show with the test that wrote
// them and only when it fails or runs with -v. Lines written after the test
// ended are dropped instead of panicking.
func Logger(tb testing.TB, level logging.Level) *logformat.Leveled {
	w := &testWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return logformat.New(w, level, tb.Name())
}

type testWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Helper()
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Poll calls cond every interval until it is true or d has passed; it
// reports whether cond became true. For what gives a test no event to wait
// on (a container's state, a replica's progress).
func Poll(d, every time.Duration, cond func() bool) bool {
	deadline := time.After(d)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			return cond()
		case <-tick.C:
		}
	}
	return true
}
