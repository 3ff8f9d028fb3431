package agency

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/logformat"
)

// capturedLog returns a logger whose lines, in the course format, end up in
// the returned buffer.
func capturedLog() (*logformat.Leveled, *testkit.Buffer) {
	buf := &testkit.Buffer{}
	return logformat.New(buf, logging.DEBUG, "test"), buf
}

// echoServer answers each connection's first line with reply(line) and
// closes it; it reports every line it got on the returned channel.
func echoServer(t *testing.T, reply func(string) string) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			got <- line
			c.Write([]byte(reply(line)))
			c.Close()
		}
	}()
	return ln.Addr().String(), got
}

func echoAgency(addr string, amount int, log *logformat.Leveled) *Agency {
	return &Agency{log: log, echo: true, opts: Options{
		ID: 3, ServerAddress: addr, ServerTimeout: 5 * time.Second, LoopAmount: amount, LoopPeriod: time.Millisecond,
		Attempts: 3, RetryTimeout: time.Minute, Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
	}}
}

func TestEchoLoop(t *testing.T) {
	t.Parallel()
	addr, got := echoServer(t, func(l string) string { return l })
	log, buf := capturedLog()
	if err := echoAgency(addr, 3, log).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 3; k++ {
		want := "[CLIENT 3] Message N°" + string(rune('0'+k))
		if line := <-got; line != want+"\n" {
			t.Errorf("server got %q, want %q", line, want+"\n")
		}
		if !strings.Contains(buf.String(), "action: receive_message | result: success | client_id: 3 | msg: "+want+"\n") {
			t.Errorf("no receive_message line for %q in:\n%s", want, buf)
		}
	}
	if !strings.HasSuffix(buf.String(), "action: loop_finished | result: success | client_id: 3\n") {
		t.Errorf("the loop did not end with loop_finished:\n%s", buf)
	}
}

// What comes back is logged as one field: a reply cannot forge a log line.
func TestEchoLoop_ReplyIsEscaped(t *testing.T) {
	t.Parallel()
	addr, _ := echoServer(t, func(string) string { return "x | action: sorteo | result: success\r\n" })
	log, buf := capturedLog()
	if err := echoAgency(addr, 1, log).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := `msg: x \x7c action: sorteo \x7c result: success` + "\n"; !strings.Contains(buf.String(), want) {
		t.Fatalf("reply not escaped, want %q in:\n%s", want, buf)
	}
}

// A central that is not listening yet is retried (compose starts both at
// once); one that never listens ends the loop with an error after the retries.
func TestEchoLoop_RetriesThenGivesUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	log, buf := capturedLog()
	err = echoAgency(addr, 1, log).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("got %v, want a give-up after 3 attempts", err)
	}
	if n := strings.Count(buf.String(), "action: reconectar | result: in_progress"); n != 3 {
		t.Fatalf("%d reconectar lines, want 3:\n%s", n, buf)
	}
}

// SIGTERM (ctx cancelled) during the wait between messages stops the loop
// with ctx's error, which main turns into exit 0.
func TestEchoLoop_Stopped(t *testing.T) {
	t.Parallel()
	addr, got := echoServer(t, func(l string) string { return l })
	log, buf := capturedLog()
	a := echoAgency(addr, 5, log)
	a.opts.LoopPeriod = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	<-got // the first message reached the server; the loop now waits an hour
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if strings.Contains(buf.String(), "loop_finished") || strings.Contains(buf.String(), "result: fail") {
		t.Fatalf("a stopped loop logged:\n%s", buf)
	}
}

func TestChooseWork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := dir + "/agency-1.csv"
	if err := os.WriteFile(file, []byte("Ana,Paz,1,1990-01-01,7574\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	betEnv := func(k string) string {
		return map[string]string{"NOMBRE": "A", "APELLIDO": "B", "DOCUMENTO": "1", "NACIMIENTO": "1990-01-01", "NUMERO": "1"}[k]
	}
	tests := []struct {
		name       string
		path       string
		loop       int
		env        func(string) string
		single     bool
		echo       bool
		errContain string
	}{
		{"File", file, 0, noEnv, false, false, ""},
		{"FileWinsOverLoop", file, 5, noEnv, false, false, ""},
		{"SingleBet", dir + "/none.csv", 5, betEnv, true, false, ""},
		{"EchoWithoutData", dir + "/none.csv", 5, noEnv, false, true, ""},
		{"ErrNothingToDo", dir + "/none.csv", 0, noEnv, false, false, "nothing to do"},
		{"ErrDirectory", dir, 0, noEnv, false, false, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, echo, err := chooseWork(Options{ID: 1, DataPath: tt.path, LoopAmount: tt.loop}, tt.env, quietLog())
			if tt.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContain) || !strings.Contains(err.Error(), "data.path") {
					t.Fatalf("err = %v, want one naming data.path and %q", err, tt.errContain)
				}
				return
			}
			_, single := b.(*singleBet)
			if err != nil || single != tt.single || echo != tt.echo || (b == nil) != echo {
				t.Fatalf("bets %T, echo %v, err %v", b, echo, err)
			}
		})
	}
}
