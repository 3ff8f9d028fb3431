package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// A row's validity depends on "today" (a birthdate may not be in the
// future). An agency stopped mid-stream and resumed under another clock or
// time zone must still skip exactly the bets the central has: both ends
// validate as of the round's start day (UTC), so offsets mean the same in
// every run.
func TestHardening_ResumeAcrossTimeZones(t *testing.T) {
	t.Parallel()
	for _, z := range []string{"Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		if _, err := os.Stat("/usr/share/zoneinfo/" + z); err != nil {
			t.Skipf("no time zone data for %s", z)
		}
	}
	kiri, _ := time.LoadLocation("Pacific/Kiritimati") // UTC+14: its today is never before UTC's
	dir := t.TempDir()
	edge := fmt.Sprintf("Edge,Case,20000066,%s,1\n", time.Now().In(kiri).Format(lottery.DateLayout))
	big, err := os.ReadFile(filepath.Join(bigData, "agency-1.csv"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "agency-1.csv"), edge+string(big))

	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 1)
	a := startAgency(t, c, 1, dir, "TZ=Pacific/Kiritimati")
	a.waitLine(`action: progreso \| result: in_progress`, 2*time.Minute)
	a.signal(syscall.SIGTERM)
	if code := a.wait(time.Minute); code != 0 {
		t.Fatalf("agency exited %d on SIGTERM", code)
	}
	if a.grep(`action: consulta_ganadores`) != nil {
		t.Skip("the agency finished before SIGTERM: nothing was resumed")
	}
	a2 := startAgency(t, c, 1, dir, "TZ=Pacific/Pago_Pago")
	if code := a2.wait(5 * time.Minute); code != 0 {
		t.Fatalf("resumed agency exited %d", code)
	}
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
	rep := verifyStore(t, db, dir, 1) // every bet once, in order, as of the round's day
	s, err := store.Open(db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := len(fileBetsAt(t, dir, 1, s.Today()))
	s.Close()
	if rep.total != want {
		t.Fatalf("stored %d bets, the file has %d valid ones as of the round's day", rep.total, want)
	}
}

// SIGTERM ends the central within its grace even when a peer sends but
// never reads, so that the central's writes block (IDLE_TIMEOUT is 5 min).
func TestHardening_ShutdownWithPeerThatDoesNotRead(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1, "IDLE_TIMEOUT=5m")
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hello := testkit.Frames(t, &protocol.Hello{Agency: 1, Mode: protocol.ModeCSV})
	gap := testkit.Frames(t, &protocol.Batch{Agency: 1, First: 1000, Bets: testkit.Bets(1, 1)}) // answered with a gap error
	conn.Write(hello)
	// Send gap batches, never reading the replies, until the central stops
	// reading: it is then blocked writing to us.
	blocked := false
	for i := 0; i < 200000 && !blocked; i++ {
		conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, err := conn.Write(bytes.Repeat(gap, 16))
		var ne net.Error
		blocked = errors.As(err, &ne) && ne.Timeout()
	}
	if !blocked {
		t.Skip("the central never blocked writing to a peer that does not read")
	}
	c.signal(syscall.SIGTERM)
	if code := c.wait(30 * time.Second); code != 0 {
		t.Fatalf("central exited %d", code)
	}
	c.waitLine(`action: shutdown \| result: success`, time.Second)
}

// With few file descriptors and a large MAX_CONNECTIONS, the limit is capped
// by RLIMIT_NOFILE (and the config line says so): connections over it are
// refused with a clear error, the accept loop does not spin, and the central
// keeps serving.
func TestHardening_FileDescriptorLimit(t *testing.T) {
	t.Parallel()
	out, addrs := startLimitedCentral(t, 40, []string{"listen"}, "MAX_CONNECTIONS=1000")
	addr := addrs["listen"]
	if !strings.Contains(out.String(), "max_connections: 8 | nofile: 40") {
		t.Fatalf("config line does not cap max_connections at RLIMIT_NOFILE:\n%s", out.String())
	}
	var held []net.Conn
	for i := 0; i < 60; i++ {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	refused := 0
	for _, conn := range held[8:] {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := protocol.NewReader(conn, 0).Next()
		if e, ok := m.(*protocol.Error); err == nil && ok && e.Code == protocol.CodeUnavailable {
			refused++
		}
	}
	for _, conn := range held {
		conn.Close()
	}
	if refused < 30 {
		t.Fatalf("%d of 52 connections over the limit were refused with unavailable", refused)
	}
	// The central keeps serving: once it noticed the closes (each session
	// sees its peer's EOF), a new connection gets its echo.
	var got string
	if !poll(20*time.Second, func() bool { got, _ = tryEcho(addr, "still here\n"); return got == "still here\n" }) {
		t.Fatalf("no echo after the burst: %q", got)
	}
	if n := strings.Count(out.String(), "action: accept_connection"); n > 200 {
		t.Fatalf("%d accept_connection lines: the accept loop spins", n)
	}
}

// A round that has begun keeps its agency count: restarting with another
// AGENCIES is a clear error, and the same count resumes. An empty round
// takes the new count (the course's tests change it between runs).
func TestHardening_AgenciesChangedBetweenRestarts(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 4)
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
	c = startCentral(t, db, 2) // empty round: fine
	cl := dial(t, c.addr)
	cl.hello(1)
	cl.send(&protocol.Batch{Agency: 1, Bets: testkit.Bets(1, 3)})
	if _, err := cl.recv(); err != nil {
		t.Fatal(err)
	}
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
	p := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=3", "DB_PATH="+db)
	if code := p.wait(time.Minute); code == 0 {
		t.Fatal("central started a begun round with another AGENCIES")
	}
	p.waitLine(`action: open_store \| result: fail .*AGENCIES = 3, but the round .* began with 2`, time.Second)
	c = startCentral(t, db, 2)
	c.waitLine(`action: recuperar_ronda \| result: success \| apuestas: 3`, time.Second)
}

// A SERVER_IP that cannot be listened on fails before the store is touched.
func TestHardening_BadListenAddressLeavesStoreAlone(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	for _, ip := range []string{"256.1.1.1", "no-such-host.invalid", "192.0.2.1"} {
		p := start(t, "server", t.TempDir(), "SERVER_IP="+ip, "SERVER_PORT=0", "DB_PATH="+db)
		if code := p.wait(time.Minute); code == 0 {
			t.Fatalf("SERVER_IP=%s: central exited 0", ip)
		}
		p.waitLine(`action: listen \| result: fail`, time.Second)
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("SERVER_IP=%s: the store was created before the listen failed", ip)
		}
	}
}

// What is logged is what was stored: a retried batch's repeated bets are
// counted apart; an empty batch is malformed; a birth year Python cannot
// read is an invalid bet; a line from the echo check cannot forge a log line.
func TestHardening_HonestLogs(t *testing.T) {
	t.Parallel()
	c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 2)
	cl := dial(t, c.addr)
	cl.hello(1)
	cl.send(&protocol.Batch{Agency: 1, Bets: testkit.Bets(1, 3)})
	cl.send(&protocol.Batch{Agency: 1, Bets: testkit.Bets(1, 5)}) // a retry: 3 again, 2 new
	for i := 0; i < 2; i++ {
		if _, err := cl.recv(); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLine(`action: apuesta_recibida \| result: success \| cantidad: 3$`, 5*time.Second)
	c.waitLine(`action: apuesta_recibida \| result: success \| cantidad: 2 \| repetidas: 3$`, 5*time.Second)
	old := testkit.Bets(1, 1)
	old[0].Birthdate = lottery.Date{Year: 0, Month: 1, Day: 1}
	cl.send(&protocol.Batch{Agency: 1, First: 5, Bets: old})
	if e := cl.expectError(protocol.CodeInvalidBet); !strings.Contains(e.Message, "before 1900") {
		t.Fatalf("year 0 refused with %q", e.Message)
	}
	cl.sendRaw(append(header(protocol.KindBatch, 14), make([]byte, 14)...)) // agency 0, first 0, count 0
	cl.expectError(protocol.CodeMalformed)
	c.waitLine(`codigo: malformed .*batch with no bets`, 5*time.Second)

	forged := "hi | action: sorteo | result: success | ganadores: 99\r\x1b[2K\x07"
	if got := echo(t, c.addr, forged+"\n"); got != forged+"\n" {
		t.Fatalf("echo answered %q", got)
	}
	line := c.waitLine(`action: receive_message \| result: success \| ip: 127.0.0.1 \| msg: hi`, 5*time.Second)
	if strings.Count(line, "|") != 3 || strings.ContainsAny(line, "\r\x1b\x07") {
		t.Fatalf("the echoed line forged fields or controls: %q", line)
	}
	if len(c.grep(`action: sorteo \| result`)) != 0 {
		t.Fatal("a forged sorteo line reached the log")
	}
}

// startLimitedCentral starts a central under `ulimit -n nofile` (the
// harness cannot set a child's limit) with env, and waits for the address of
// each listener named in wait ("listen", "admin_listen").
func startLimitedCentral(t *testing.T, nofile int, wait []string, env ...string) (*testkit.Buffer, map[string]string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0"`, nofile), filepath.Join(binDir, "server"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0", "SERVER_IP=127.0.0.1", "SERVER_PORT=0",
		"AGENCIES=1", "DB_PATH=" + filepath.Join(t.TempDir(), "bets.db"), "SERVER_LISTEN_BACKLOG=128"}, env...)
	out := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrs := map[string]string{}
	if !poll(20*time.Second, func() bool {
		for _, action := range wait {
			if m := regexp.MustCompile(`action: ` + action + ` \| result: success \| direccion: (\S+)`).FindStringSubmatch(out.String()); m != nil {
				addrs[action] = m[1]
			}
		}
		return len(addrs) == len(wait)
	}) {
		t.Fatalf("central did not listen:\n%s", out)
	}
	return out, addrs
}
