package e2e

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/protocol"
)

// header returns a frame header of kind with a claimed body length.
func header(kind protocol.Kind, length uint32) []byte {
	b := []byte{protocol.Marker, byte(kind), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], length)
	return b
}

// encodeFrame returns the frame of m.
// Hostile input: each case must get a fail line with its reason, an error
// reply where the connection is still usable, a close otherwise, and must
// leave the central serving a correct normal run afterwards.
func TestHostile(t *testing.T) {
	t.Parallel()
	const maxConns = 40
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 5, "IDLE_TIMEOUT=1s", "MAX_CONNECTIONS=40", "SERVER_LISTEN_BACKLOG=1024")

	t.Run("RandomBytes", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 7))
		for i := range 20 {
			junk := make([]byte, 1+rng.IntN(4096))
			for j := range junk {
				junk[j] = byte(rng.UintN(256))
			}
			if i%2 == 0 {
				junk[0] = protocol.Marker // past the first-byte check, into the decoder
			} else {
				junk[0] = 0x01
			}
			cl := dial(t, c.addr)
			cl.sendRaw(junk)
			cl.expectClosed()
		}
		c.waitLine(`action: receive_message \| result: fail .*neither text nor a protocol frame`, 5*time.Second)
	})
	t.Run("HugeLength", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.sendRaw(header(protocol.KindBatch, 0xFFFFFFFF))
		cl.expectError(protocol.CodeMalformed)
		cl.expectClosed()
		c.waitLine(`result: fail .*frame too large: batch body of 4294967295 bytes`, 5*time.Second)
	})
	t.Run("TruncatedThenSilence", func(t *testing.T) {
		cl := dial(t, c.addr)
		frame := testkit.Frames(t, &protocol.Hello{Agency: 1, Mode: protocol.ModeCSV})
		cl.sendRaw(frame[:len(frame)-2])
		cl.expectError(protocol.CodeTimeout) // the idle deadline frees the goroutine and socket
		cl.expectClosed()
		c.waitLine(`result: fail .*codigo: timeout`, 5*time.Second)
	})
	t.Run("TrickledSlowly", func(t *testing.T) {
		// One byte every 300 ms: the frame cannot complete within IDLE_TIMEOUT.
		cl := dial(t, c.addr)
		frame := testkit.Frames(t, &protocol.Hello{Agency: 2, Mode: protocol.ModeCSV})
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for _, b := range frame {
			if _, err := cl.conn.Write([]byte{b}); err != nil {
				break // closed by the central: what we want
			}
			<-tick.C
		}
		cl.expectClosed()
	})
	t.Run("TrickledQuickly", func(t *testing.T) {
		// One byte at a time, but in time: a slow link is served.
		cl := dial(t, c.addr)
		for _, b := range testkit.Frames(t, &protocol.Hello{Agency: 2, Mode: protocol.ModeCSV}) {
			cl.sendRaw([]byte{b})
		}
		if m, err := cl.recv(); err != nil || m.Kind() != protocol.KindWelcome {
			t.Fatalf("trickled hello answered %#v, %v", m, err)
		}
	})
	t.Run("CountOverBody", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.hello(3)
		body := make([]byte, 20)
		binary.BigEndian.PutUint32(body, 3)
		binary.BigEndian.PutUint16(body[12:], 10000) // 10,000 bets claimed in 20 bytes
		cl.sendRaw(append(header(protocol.KindBatch, 20), body...))
		cl.expectError(protocol.CodeMalformed)
		cl.expectClosed()
		c.waitLine(`result: fail .*count over bound: 10000 bets in 6 bytes`, 5*time.Second)
	})
	t.Run("InvalidUTF8", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.hello(4)
		bets := testkit.Bets(4, 2)
		bets[1].LastName = "Pe\xf1a" // Latin-1, not UTF-8
		cl.sendRaw(testkit.Frames(t, &protocol.Batch{Agency: 4, Bets: bets}))
		cl.expectError(protocol.CodeMalformed)
		c.waitLine(`result: fail .*string is not valid UTF-8`, 5*time.Second)
	})
	t.Run("BetForAnotherAgency", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.hello(5)
		cl.send(&protocol.Batch{Agency: 1, Bets: testkit.Bets(1, 3)})
		cl.expectError(protocol.CodeUnknownAgency)
		cl.expectClosed()
		c.waitLine(`action: apuesta_recibida \| result: fail \| cantidad: 3 .*batch for agency 1 on agency 5's session`, 5*time.Second)
	})
	t.Run("WinnersFromAgencyThatNeverBet", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.hello(1)
		cl.send(&protocol.WinnersRequest{})
		cl.expectError(protocol.CodeUnexpected)
		cl.expectClosed()
		c.waitLine(`action: consulta_ganadores \| result: fail .*agency 1 has not finished`, 5*time.Second)
	})
	t.Run("ManyIdleConnections", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, conn := range conns {
				conn.Close()
			}
		}()
		refused := 0
		for range 1000 {
			conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
			if err != nil {
				refused++
				continue
			}
			conns = append(conns, conn)
		}
		// Those past the limit get an Unavailable error frame and a close.
		for _, conn := range conns[maxConns:] {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := protocol.NewReader(conn, 0).Next()
			if e, ok := m.(*protocol.Error); err == nil && ok && e.Code == protocol.CodeUnavailable {
				continue
			}
			refused++
		}
		if refused > 0 {
			t.Fatalf("%d of 1000 connections got no Unavailable error frame", refused)
		}
		c.waitLine(`action: accept_connection \| result: fail .*connection limit of 40 reached`, 5*time.Second)
		// The idle ones within the limit are closed by the idle deadline.
		for _, conn := range conns[:maxConns] {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var b [64]byte
			for {
				if _, err := conn.Read(b[:]); err != nil {
					break
				}
			}
		}
	})
	t.Run("EchoStillWorks", func(t *testing.T) {
		if got := echo(t, c.addr, "still here\n"); got != "still here\n" {
			t.Fatalf("echo: %q", got)
		}
	})

	// A normal run on the same central must still be correct. Agencies 2..4
	// said hello above but stored nothing; their sessions are closed by now.
	want := expectedWinners(t, genData, 5)
	agencies := make([]*proc, 6)
	for i := 1; i <= 5; i++ {
		agencies[i] = startAgency(t, c, i, genData)
	}
	waitAgencies(t, agencies, want)
	stopCentral(t, c)
	if rep := verifyStore(t, db, genData, 5); rep.total != 20000 {
		t.Fatalf("stored %d, want 20000", rep.total)
	}
}
