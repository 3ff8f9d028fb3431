package agency

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/op/go-logging"
)

// fakeCentral serves each connection with serve, which reads and writes
// protocol frames as a central that misbehaves in some way.
func fakeCentral(t *testing.T, serve func(r *protocol.Reader, conn net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				serve(protocol.NewReader(conn, 0), conn)
			}()
		}
	}()
	return ln.Addr().String()
}

var oneBet = lottery.Bet{Agency: 1, FirstName: "Ana", LastName: "Paz", Document: "1", Birthdate: lottery.Date{Year: 1990, Month: 1, Day: 1}, Number: 7574}

func oneBetDigest() [lottery.DigestSize]byte {
	d := lottery.NewDigest()
	b := oneBet
	d.Add(&b)
	return d.Sum()
}

// csvAgency is agency 1 with one bet in its file, talking to addr.
func csvAgency(t *testing.T, addr string) *Agency {
	path := filepath.Join(t.TempDir(), "agency-1.csv")
	if err := os.WriteFile(path, []byte("Ana,Paz,1,1990-01-01,7574\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := quietLog()
	return &Agency{log: log, bets: &csvBets{path: path, agency: 1, log: log}, opts: Options{
		ID: 1, ServerAddress: addr, ServerTimeout: 5 * time.Second, WinnersTimeout: 5 * time.Second,
		BatchMaxAmount: 10, BatchWindow: 2, Attempts: 3, RetryTimeout: time.Minute, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	}}
}

var round = uint64(time.Now().UnixNano())

// A central that welcomes the agency (finished, its bets stored) but keeps
// failing to answer its winners: each attempt makes no progress, so the
// agency gives up after reconnect.attempts instead of retrying for ever.
func TestSession_NoProgressGivesUp(t *testing.T) {
	t.Parallel()
	var hellos atomic.Int32
	addr := fakeCentral(t, func(r *protocol.Reader, conn net.Conn) {
		if _, err := r.Next(); err != nil {
			return
		}
		hellos.Add(1)
		protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true, Digest: oneBetDigest()})
		if m, err := r.Next(); err != nil || m.Kind() != protocol.KindWinnersRequest {
			return
		}
		protocol.Write(conn, protocol.NewError(protocol.CodeInternal, "draw failed: input/output error"))
	})
	err := csvAgency(t, addr).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts without progress") || !strings.Contains(err.Error(), "internal") {
		t.Fatalf("Run = %v, want a give-up after 3 attempts", err)
	}
	if n := hellos.Load(); n != 4 {
		t.Fatalf("%d sessions, want 4 (the first and 3 retries)", n)
	}
}

// The agency believes only a central that stored exactly its bets.
func TestSession_CentralNotOurs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		serve func(r *protocol.Reader, conn net.Conn)
		want  string
	}{
		{"FinishedWithoutOurBets", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 0, Finished: true})
		}, "says agency 1 finished with 0 bets stored, but"},
		{"FinishedWithOtherBets", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true, Digest: [32]byte{1}})
		}, "(same count, other bets)"},
		{"OtherBetsStored", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Digest: [32]byte{1}})
		}, "digest mismatch"},
		{"AckCountsMore", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 0})
			r.Next()
			protocol.Write(conn, &protocol.Ack{First: 0, Stored: 1, Committed: 6})
		}, "with 6 bets committed; this agency sent that batch at 0 and expects 1"},
		// A fake central once made the agency exit 0 with none of its bets
		// stored: an all-zero digest meant "unknown" and skipped the check.
		{"FinishedNoDigest", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true})
		}, "(same count, other bets)"},
		{"StoredNoDigest", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1})
		}, "holds 1 bets for agency 1 but no digest of them"},
		{"EndlessWinners", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true, Digest: oneBetDigest()})
			r.Next()
			for i := 0; i < 1000; i++ {
				if protocol.Write(conn, &protocol.Winners{Documents: []string{"1", "2", "3"}}) != nil {
					return
				}
			}
		}, "sent more than the 1 winners agency 1's bets hold"},
		{"MadeUpWinner", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true, Digest: oneBetDigest()})
			r.Next()
			protocol.Write(conn, &protocol.Winners{Last: true, Documents: []string{"99"}})
		}, "document 99 is not one of its winning bets"},
		{"WinnerWithheld", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true, Digest: oneBetDigest()})
			r.Next()
			protocol.Write(conn, &protocol.Winners{Last: true})
		}, "document 1 is missing"},
		{"FinishedCountsOther", func(r *protocol.Reader, conn net.Conn) {
			r.Next()
			protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 0})
			r.Next()
			protocol.Write(conn, &protocol.Ack{First: 0, Stored: 1, Committed: 1})
			r.Next()
			protocol.Write(conn, &protocol.Finished{Count: 1, Agencies: 1, Committed: 0})
		}, "recorded agency 1's finish with 0 bets; this agency sent 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := csvAgency(t, fakeCentral(t, tt.serve)).Run(context.Background())
			if !isPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want a permanent error with %q", err, tt.want)
			}
			if !strings.HasPrefix(tt.name, "Finished") && !errors.Is(err, errNotOurs) {
				t.Fatalf("%v is not errNotOurs", err)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	base, max := 100*time.Millisecond, 3*time.Second
	for attempt := 1; attempt <= 12; attempt++ {
		bound := min(base<<(attempt-1), max)
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := jitter(base, max, attempt)
			if d < base/2 || d > bound {
				t.Fatalf("attempt %d: wait %s outside [%s, %s]", attempt, d, base/2, bound)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Fatalf("attempt %d: only %d distinct waits in 200: not jittered", attempt, len(seen))
		}
	}
}

// honestCentral answers one agency as the real central does (without
// storing anything): it acknowledges every batch, records the finish and
// answers the winners of the bets it saw. finished is closed when it gets a
// Finish.
func honestCentral(t *testing.T) (addr string, finished <-chan struct{}) {
	t.Helper()
	fin := make(chan struct{})
	var once sync.Once
	addr = fakeCentral(t, func(r *protocol.Reader, conn net.Conn) {
		var winners []string
		committed := uint64(0)
		for {
			m, err := r.Next()
			if err != nil {
				return
			}
			switch m := m.(type) {
			case *protocol.Hello:
				protocol.Write(conn, &protocol.Welcome{Round: round})
			case *protocol.Batch:
				for _, b := range m.Bets {
					if lottery.HasWon(b) {
						winners = append(winners, b.Document)
					}
				}
				committed = m.First + uint64(len(m.Bets))
				protocol.Write(conn, &protocol.Ack{First: m.First, Stored: len(m.Bets), Committed: committed})
			case *protocol.Finish:
				once.Do(func() { close(fin) })
				protocol.Write(conn, &protocol.Finished{Count: 1, Agencies: 1, Committed: committed})
			case *protocol.WinnersRequest:
				protocol.Write(conn, &protocol.Winners{Last: true, Documents: winners})
			case *protocol.Received:
				protocol.Write(conn, &protocol.Goodbye{})
				return
			}
		}
	})
	return addr, fin
}

// fileAgency is agency 1 sending the CSV rows of content to addr.
func fileAgency(t *testing.T, addr, content string) *Agency {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agency-1.csv")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	a := csvAgency(t, addr)
	a.bets = &csvBets{path: path, agency: 1, log: a.log}
	return a
}

// rows returns n valid CSV rows, documents 1..n.
func rows(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("Ana,Paz,%d,1990-01-01,%d\n", i+1, i%10000)
	}
	return out
}

// A quote left open swallows the rest of the file: the agency names the
// line where it began, counts every row it lost, and does not finish (it
// once sent 100, said descartadas: 1, named line 5000 and exited 0).
func TestSession_StrayQuoteIsAFailure(t *testing.T) {
	t.Parallel()
	r := rows(5000)
	r[100] = `"Ana,Paz,101,1990-01-01,1` + "\n"
	addr, finished := honestCentral(t)
	a := fileAgency(t, addr, strings.Join(r, ""))
	logs := &testkit.Buffer{}
	a.log = logformat.New(logs, logging.INFO, "test")
	a.bets.(*csvBets).log = a.log
	err := a.Run(context.Background())
	if !isPermanent(err) || !strings.Contains(err.Error(), "could not be read whole: 4900 rows lost") || !strings.Contains(err.Error(), "agency-1.csv:101:") {
		t.Fatalf("Run = %v, want a permanent error naming line 101 and 4900 rows", err)
	}
	select {
	case <-finished:
		t.Fatal("the agency finished although its file was not read whole")
	default:
	}
	for _, want := range []string{"linea: 101 | campo: - | error: extraneous or missing \" in quoted-field: the field opened on this line runs to line 5000",
		"action: apuestas_enviadas | result: success | cantidad: 100 | descartadas: 4900"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in:\n%s", want, logs)
		}
	}
}

// Progress counts stored bets: the fraction reported with each ack never
// runs ahead of them (porcentaje: 100 once appeared at 25,049 of 26,235).
func TestSession_ProgressCountsStoredBets(t *testing.T) {
	t.Parallel()
	const n = 26235
	addr, _ := honestCentral(t)
	a := fileAgency(t, addr, strings.Join(rows(n), ""))
	type point struct {
		stored   uint64
		fraction float64
	}
	var points []point
	a.bets.(*csvBets).progress = func(stored uint64, fraction float64) { points = append(points, point{stored, fraction}) }
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(points) == 0 || points[len(points)-1].fraction != 1 {
		t.Fatalf("progress ends at %v", points[len(points)-1:])
	}
	for _, p := range points {
		// Rows are 27 to 33 bytes: the fraction of bytes may lead the
		// fraction of rows by a little, never by a batch.
		if ahead := p.fraction - float64(p.stored)/n; ahead > 0.01 {
			t.Fatalf("at %d of %d stored, progress says %.3f", p.stored, n, p.fraction)
		}
	}
}

// The single bet is validated as of the round's day, like a CSV row: born
// today is a birth in the future for a round that began yesterday.
func TestSession_SingleBetAsOfTheRoundsDay(t *testing.T) {
	t.Parallel()
	yesterday := time.Now().UTC().AddDate(0, 0, -1)
	sent := make(chan protocol.Kind, 4)
	addr := fakeCentral(t, func(r *protocol.Reader, conn net.Conn) {
		r.Next()
		protocol.Write(conn, &protocol.Welcome{Round: uint64(yesterday.UnixNano())})
		if m, err := r.Next(); err == nil {
			sent <- m.Kind()
		}
	})
	today := time.Now().UTC()
	env := map[string]string{"NOMBRE": "Ana", "APELLIDO": "Paz", "DOCUMENTO": "1", "NACIMIENTO": today.Format(time.DateOnly), "NUMERO": "1"}
	o := NewOptions()
	o.ID, o.ServerAddress, o.Attempts, o.Backoff, o.MaxBackoff = 1, addr, 1, time.Millisecond, time.Millisecond
	a, err := New(o, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if !isPermanent(err) || !strings.Contains(err.Error(), "as of the round's day "+yesterday.Format(time.DateOnly)) {
		t.Fatalf("Run = %v, want a permanent error as of %s", err, yesterday.Format(time.DateOnly))
	}
	select {
	case k := <-sent:
		t.Fatalf("the agency sent %s", k)
	default:
	}
}

// An agency whose receipt was recorded but whose goodbye was lost (the
// central killed between the two) finds a new round when it reconnects:
// the round was over and archived. The winners it holds are final, none
// included: an agency with no winners once failed there ("the central
// started a new round") after the chaos test killed the central at that
// point.
func TestSession_ReceiptRecordedGoodbyeLost(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		number int
	}{{"AWinner", lottery.WinnerNumber}, {"NoWinners", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bet := oneBet
			bet.Number = tt.number
			d := lottery.NewDigest()
			d.Add(&bet)
			var winners []string
			if lottery.HasWon(bet) {
				winners = []string{bet.Document}
			}
			var sessions atomic.Int32
			addr := fakeCentral(t, func(r *protocol.Reader, conn net.Conn) {
				if _, err := r.Next(); err != nil {
					return
				}
				if sessions.Add(1) > 1 {
					protocol.Write(conn, &protocol.Welcome{Round: round + 1}) // the next round
					return
				}
				protocol.Write(conn, &protocol.Welcome{Round: round, Committed: 1, Finished: true, Digest: d.Sum()})
				if m, err := r.Next(); err != nil || m.Kind() != protocol.KindWinnersRequest {
					return
				}
				protocol.Write(conn, &protocol.Winners{Last: true, Documents: winners})
				r.Next() // Received: recorded, and the central dies before its Goodbye
			})
			a := fileAgency(t, addr, fmt.Sprintf("Ana,Paz,1,1990-01-01,%d\n", tt.number))
			if err := a.Run(context.Background()); err != nil {
				t.Fatalf("Run = %v, want the winners held (%d) as final", err, len(winners))
			}
			if got := len(a.Winners()); got != len(winners) || sessions.Load() != 2 {
				t.Fatalf("%d winners after %d sessions, want %d after 2", got, sessions.Load(), len(winners))
			}
		})
	}
}

// A follower that names the leader is a redirect, not a failure: the agency
// goes there at once instead of waiting its backoff (every agency of a
// swarm started on a follower waited up to 100 ms; after a failover, up to
// the grown backoff). Here the backoff is an hour: a wait would hang.
func TestSession_FollowerRedirectIsImmediate(t *testing.T) {
	t.Parallel()
	var leaderHellos atomic.Int32
	leader := fakeCentral(t, func(r *protocol.Reader, conn net.Conn) {
		if _, err := r.Next(); err != nil {
			return
		}
		leaderHellos.Add(1)
		protocol.Write(conn, protocol.NewError(protocol.CodeUnknownAgency, "agency 1 is not in this round")) // permanent: Run ends
	})
	follower := fakeCentral(t, func(r *protocol.Reader, conn net.Conn) {
		if _, err := r.Next(); err != nil {
			return
		}
		protocol.Write(conn, &protocol.Error{Code: protocol.CodeNotLeader, Index: -1, Message: leader})
	})
	a := csvAgency(t, follower)
	a.opts.Backoff, a.opts.MaxBackoff = time.Hour, time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := a.Run(ctx)
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeUnknownAgency}) || leaderHellos.Load() != 1 {
		t.Fatalf("Run = %v after %d hellos to the leader; want the leader's own answer, reached without a backoff", err, leaderHellos.Load())
	}
}
