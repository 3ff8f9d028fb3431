package e2e

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/storetest"
	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/protocol"
)

// noCrash fails when a process's output shows a Go crash.
func noCrash(t *testing.T, p *proc) {
	t.Helper()
	for _, crash := range []string{"panic:", "fatal error:", "goroutine ", "SIGBUS", "SIGSEGV"} {
		if strings.Contains(p.output(), crash) {
			t.Fatalf("%s crashed (%q):\n%s", p.name, crash, p.output())
		}
	}
}

// A damaged store is refused at start with one clean line naming what is
// damaged and what to do, never a crash: a file cut short, a flipped digit
// in a stored row (a batch that fails its checksum).
func TestHardening3_DamagedStore(t *testing.T) {
	t.Parallel()
	t.Run("Truncated", func(t *testing.T) {
		t.Parallel()
		path := storetest.DamagedRow(t, 2)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, data[:len(data)/2], 0o600)
		p := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=2", "DB_PATH="+path)
		if code := p.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d on a truncated store", code)
		}
		p.waitLine(`action: open_store \| result: fail \| db_path: .* \| error: .*not a bets store file \(damaged\).* \| sugerencia: restore the file from a backup`, time.Second)
		noCrash(t, p)
	})
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "bets.db")
		os.WriteFile(path, nil, 0o600)
		p := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=2", "DB_PATH="+path)
		if code := p.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit %d on an empty store file", code)
		}
		p.waitLine(`action: open_store \| result: fail .* is empty \(0 bytes\)`, time.Second)
	})
	t.Run("DigitOfAStoredRow", func(t *testing.T) {
		t.Parallel()
		path := storetest.DamagedRow(t, 2)
		for run := 1; run <= 2; run++ { // and again at the restart: the same refusal
			p := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=2", "DB_PATH="+path)
			if code := p.wait(30 * time.Second); code != 1 {
				t.Fatalf("run %d: exit %d", run, code)
			}
			line := p.waitLine(`action: open_store \| result: fail \| db_path: .* batch 000000000001\.\.000000001000 of agency 1: its checksum is .* \| sugerencia: restore the file from a backup`, time.Second)
			if n := len(p.grep(`result: fail`)); n != 1 {
				t.Fatalf("run %d: %d fail lines, want one:\n%s", run, n, p.output())
			}
			t.Log(line)
			noCrash(t, p)
		}
	})
}

// Revocation takes the spellings operators paste (openssl's serial=HEX,
// 0x...) and the config line shows what it read.
func TestHardening3_RevocationSpellings(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	for _, spell := range []string{"serial=" + strings.ToUpper(p.revoked), "0x00" + p.revoked} {
		t.Run(spell[:3], func(t *testing.T) {
			c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 3, p.centralEnv("TLS_DENY_SERIALS="+spell)...)
			c.waitLine(`action: config \| result: success .*tls_deny_serials: `+p.revoked+` \|`, time.Second)
			a := startAgency(t, c, 3, genData, append(p.agencyEnv("agency-3", "ca"), "CLI_SERVER_ADDRESS=localhost:"+c.addr[len("127.0.0.1:"):], "CLI_RECONNECT_ATTEMPTS=1")...)
			if code := a.wait(time.Minute); code == 0 {
				t.Fatalf("a revoked agency (%s) exited 0", spell)
			}
			c.waitLine(`action: tls_handshake \| result: fail .*revoked by TLS_DENY_SERIALS`, 5*time.Second)
		})
	}
}

// tlsCentralEnv is centralEnv without TLS_REQUIRED: what an operator who
// only set certificates gets.
func (p testPKI) tlsCentralEnv(extra ...string) []string {
	return append([]string{"TLS_CERT=" + p.file("server.crt"), "TLS_KEY=" + p.file("server.key"), "TLS_CLIENT_CA=" + p.file("ca.crt")}, extra...)
}

// Certificates make TLS the rule: a plaintext agency session is refused
// unless TLS_REQUIRED=false says otherwise, and even then it cannot speak
// for an agency that has spoken over TLS (it once finished a TLS agency with
// 0 bets and read another agency's winners).
func TestHardening3_PlaintextBesideTLS(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	t.Run("RefusedByDefault", func(t *testing.T) {
		c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 3, p.tlsCentralEnv()...)
		c.waitLine(`action: config \| result: success .*tls: true \| tls_required: true`, time.Second)
		cl := dial(t, c.addr)
		cl.send(&protocol.Hello{Agency: 1, Mode: protocol.ModeCSV})
		cl.expectError(protocol.CodeForbidden)
		if got := echo(t, c.addr, "ping\n"); got != "ping\n" {
			t.Fatalf("the echo check is not plaintext any more: %q", got)
		}
	})
	t.Run("OptInNeverFencesTLS", func(t *testing.T) {
		c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 3, p.tlsCentralEnv("TLS_REQUIRED=false")...)
		c.waitLine(`action: config \| result: success \| tls_required: false \| warning: plaintext agency sessions are accepted`, time.Second)
		tlsCl := p.dialTLS(t, c.addr, "agency-1")
		tlsCl.hello(1)
		plain := dial(t, c.addr)
		plain.send(&protocol.Hello{Agency: 1, Mode: protocol.ModeCSV})
		plain.expectError(protocol.CodeForbidden)
		// The TLS session is still agency 1's.
		tlsCl.send(&protocol.Batch{Agency: 1, First: 0, Bets: testkit.Bets(1, 2)})
		if m, err := tlsCl.recv(); err != nil {
			t.Fatalf("the TLS session was ended: %v", err)
		} else if _, ok := m.(*protocol.Ack); !ok {
			t.Fatalf("the TLS session got %#v", m)
		}
		// Another agency, never seen over TLS, may still use plaintext.
		other := dial(t, c.addr)
		other.hello(2)
	})
}

// Idle admin connections cannot take the descriptors agencies need: with
// nofile 128, 117 idle admin connections once made the agency port's
// accept fail and an agency gave up.
func TestHardening3_AdminCannotStarveAgencies(t *testing.T) {
	t.Parallel()
	out, addrs := startLimitedCentral(t, 128, []string{"listen", "admin_listen"}, "ADMIN_ADDR=127.0.0.1:0")
	for i := 0; i < 117; i++ {
		conn, err := net.DialTimeout("tcp", addrs["admin_listen"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	c := &central{proc: &proc{t: t, name: "server"}, addr: addrs["listen"]}
	a := startAgency(t, c, 1, genData)
	if code := a.wait(2 * time.Minute); code != 0 {
		t.Fatalf("the agency exited %d beside 117 idle admin connections:\n%s\n%s", code, a.output(), out)
	}
	if strings.Contains(out.String(), "accept_connection | result: fail") {
		t.Fatalf("the agency port failed to accept:\n%s", out)
	}
}

// Without TLS anyone may say hello for an agency: a peer that does so every
// 100 ms while the agency waits for the draw takes its session each time.
// The agency is told it was replaced and takes the session back without
// spending its retry budget (it once gave up after reconnect.attempts), and
// gets its winners once the draw runs.
func TestHardening3_FlappingHellosDoNotSpendTheBudget(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 2)
	a := startAgency(t, c, 1, genData, "CLI_RECONNECT_ATTEMPTS=3", "CLI_RECONNECT_BACKOFF=20ms", "CLI_RECONNECT_MAXBACKOFF=40ms")
	a.waitLine(`action: fin_envio \| result: success`, time.Minute)
	told := func() int {
		return len(a.grep(`action: sesion_reemplazada \| result: fail \| agencia: 1 \| error: central: replaced`))
	}
	for i := 1; i <= 10; i++ {
		cl := dial(t, c.addr)
		cl.hello(1)
		cl.conn.Close()
		if !poll(10*time.Second, func() bool { return told() >= i }) {
			t.Fatalf("takeover %d: the agency was not told:\n%s", i, a.output())
		}
		// It takes the session back (its hello waits for ours to end).
		if !poll(10*time.Second, func() bool {
			return len(c.grep(`action: hello \| result: success .*agencia: 1 .*finalizada: true`)) >= 2*i
		}) {
			t.Fatalf("takeover %d: the agency did not come back:\n%s", i, c.output())
		}
	}
	c.waitLine(`action: sesion_reemplazada \| result: success \| ip: 127.0.0.1 \| agencia: 1`, 10*time.Second)
	b := startAgency(t, c, 2, genData)
	for _, p := range []*proc{a, b} {
		if code := p.wait(2 * time.Minute); code != 0 {
			t.Fatalf("agency exited %d:\n%s", code, p.output())
		}
	}
	a.waitLine(`action: consulta_ganadores \| result: success`, time.Second)
}

// A TLS agency against a plaintext central says so once and stops (it once
// retried "tls: EOF" for the whole reconnect.timeout); pairs that cannot
// work are refused at start, naming the file.
func TestHardening3_TLSMistakes(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	t.Run("AgencyAgainstPlaintextCentral", func(t *testing.T) {
		c := startCentral(t, filepath.Join(t.TempDir(), "bets.db"), 1)
		a := startAgency(t, c, 1, genData, append(p.agencyEnv("agency-1", "ca"), "CLI_SERVER_ADDRESS=localhost:"+c.addr[len("127.0.0.1:"):])...)
		if code := a.wait(time.Minute); code != 1 {
			t.Fatalf("exit %d", code)
		}
		a.waitLine(`action: tls_handshake \| result: fail .*the central does not speak TLS: it answered with the plaintext protocol`, time.Second)
		if n := len(a.grep(`action: tls_handshake \| result: fail`)); n != 1 {
			t.Fatalf("%d handshake failures logged, want 1:\n%s", n, a.output())
		}
	})
	for _, tt := range []struct {
		name, bin string
		env       []string
		want      string
	}{
		{"AgencyPairAsTLSCert", "server", []string{"TLS_CERT=" + p.file("agency-1.crt"), "TLS_KEY=" + p.file("agency-1.key"), "TLS_CLIENT_CA=" + p.file("ca.crt")}, "agency-1.crt is not a server certificate"},
		{"LeafAsClientCA", "server", []string{"TLS_CERT=" + p.file("server.crt"), "TLS_KEY=" + p.file("server.key"), "TLS_CLIENT_CA=" + p.file("server.crt")}, `is not a CA certificate`},
		{"AnotherAgencysPair", "agency", append(p.agencyEnv("agency-2", "ca"), "CLI_ID=1", "CLI_DATA_PATH="+filepath.Join(genData, "agency-1.csv")), "agency-2.crt is agency 2's certificate, not agency 1's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proc := start(t, tt.bin, t.TempDir(), append(tt.env, "DB_PATH="+filepath.Join(t.TempDir(), "b.db"), "SERVER_PORT=0")...)
			if code := proc.wait(30 * time.Second); code == 0 {
				t.Fatal("exited 0")
			}
			proc.waitLine(`action: config \| result: fail \| error: .*`+regexp.QuoteMeta(tt.want), time.Second)
		})
	}
}
