package agency

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
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
			if !strings.Contains(tt.name, "Finished") && !errors.Is(err, errNotOurs) {
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
