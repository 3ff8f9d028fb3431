package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/record"
)

// testPKI is a lottery CA with the central's pair and agencies 1..3, plus
// an expired agency 1 pair and an agency 1 pair from a foreign CA.
type testPKI struct {
	dir     string
	revoked string // serial of agency 3's certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	valid := pki.Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	must := func(p pki.Pair, err error) pki.Pair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := must(pki.NewCA("test CA", valid))
	other := must(pki.NewCA("foreign CA", valid))
	pairs := map[string]pki.Pair{
		"ca":              ca,
		"foreign-ca":      other,
		"server":          must(pki.NewServer(ca, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, valid)),
		"agency-1":        must(pki.NewAgency(ca, 1, valid)),
		"agency-2":        must(pki.NewAgency(ca, 2, valid)),
		"agency-3":        must(pki.NewAgency(ca, 3, valid)),
		"agency-1-old":    must(pki.NewAgency(ca, 1, pki.Spec{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})),
		"agency-1-forged": must(pki.NewAgency(other, 1, valid)),
	}
	for name, p := range pairs {
		if err := p.Write(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	return testPKI{dir: dir, revoked: pki.Serial(pairs["agency-3"].Cert)}
}

func (p testPKI) file(name string) string { return filepath.Join(p.dir, name) }

// centralEnv turns on required mutual TLS.
func (p testPKI) centralEnv(extra ...string) []string {
	return append([]string{"TLS_CERT=" + p.file("server.crt"), "TLS_KEY=" + p.file("server.key"),
		"TLS_CLIENT_CA=" + p.file("ca.crt"), "TLS_REQUIRED=true"}, extra...)
}

// agencyEnv gives an agency the pair base, trusting ca.
func (p testPKI) agencyEnv(base, ca string) []string {
	return []string{"CLI_TLS_CA=" + p.file(ca+".crt"), "CLI_TLS_CERT=" + p.file(base+".crt"), "CLI_TLS_KEY=" + p.file(base+".key")}
}

// dialTLS opens a raw protocol client over TLS with the pair base.
func (p testPKI) dialTLS(t *testing.T, addr, base string) *rawClient {
	t.Helper()
	pair, pool, err := pki.Load(p.file(base+".crt"), p.file(base+".key"), p.file("ca.crt"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: protocol.NewReader(conn, 0)}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 3, p.centralEnv("IDLE_TIMEOUT=2s", "TLS_DENY_SERIALS=ab:cd,"+p.revoked)...)
	c.waitLine(`action: config \| result: success .*tls: true \| tls_required: true`, time.Second)
	tlsAgency := func(t *testing.T, id int, base, ca string) *proc {
		return startAgency(t, c, id, genData, append(p.agencyEnv(base, ca), "CLI_SERVER_ADDRESS=localhost:"+c.addr[len("127.0.0.1:"):])...)
	}

	t.Run("CertificateForAnotherAgency", func(t *testing.T) {
		cl := p.dialTLS(t, c.addr, "agency-2")
		cl.send(&protocol.Hello{Agency: 3, Mode: protocol.ModeCSV})
		cl.expectError(protocol.CodeForbidden)
		cl.expectClosed()
		c.waitLine(`action: hello \| result: fail .*codigo: forbidden .*names agency 2, not agency 3`, 5*time.Second)
	})
	t.Run("PlaintextRefused", func(t *testing.T) {
		cl := dial(t, c.addr)
		cl.send(&protocol.Hello{Agency: 1, Mode: protocol.ModeCSV})
		if e := cl.expectError(protocol.CodeForbidden); e.Message == "" {
			t.Fatal("no reason given")
		}
		// A plain agency is told why and stops (exit 1), never retrying for ever.
		a := startAgency(t, c, 1, genData, "CLI_RECONNECT_ATTEMPTS=2")
		if code := a.wait(time.Minute); code == 0 {
			t.Fatal("a plaintext agency exited 0 against a central that requires TLS")
		}
		a.waitLine(`action: agencia \| result: fail \| error: central: forbidden: TLS is required`, time.Second)
	})
	t.Run("EchoCheckStillPlain", func(t *testing.T) {
		if got := echo(t, c.addr, "ping\n"); got != "ping\n" {
			t.Fatalf("echo with TLS required: %q", got)
		}
	})
	t.Run("ExpiredCertificate", func(t *testing.T) {
		a := tlsAgency(t, 1, "agency-1-old", "ca")
		if code := a.wait(time.Minute); code == 0 {
			t.Fatal("an agency with an expired certificate exited 0")
		}
		a.waitLine(`action: config \| result: fail \| error: .*agency-1-old.crt expired on`, time.Second)
	})
	t.Run("ForeignCertificate", func(t *testing.T) {
		// Its pair is from another CA, which it trusts: the central refuses it.
		a := tlsAgency(t, 1, "agency-1-forged", "foreign-ca")
		if code := a.wait(time.Minute); code == 0 {
			t.Fatal("an agency with a foreign certificate exited 0")
		}
		a.waitLine(`action: tls_handshake \| result: fail`, time.Second)
		c.waitLine(`action: tls_handshake \| result: fail .*certificate`, 5*time.Second)
	})
	t.Run("WrongCA", func(t *testing.T) {
		// Its own pair is good, but it trusts a CA that did not sign it: a config error.
		a := tlsAgency(t, 1, "agency-1", "foreign-ca")
		if code := a.wait(time.Minute); code == 0 {
			t.Fatal("an agency with the wrong CA exited 0")
		}
		a.waitLine(`action: config \| result: fail \| error: .*not signed by the CA`, time.Second)
	})
	t.Run("RevokedCertificate", func(t *testing.T) {
		a := tlsAgency(t, 3, "agency-3", "ca")
		if code := a.wait(time.Minute); code == 0 {
			t.Fatal("an agency with a revoked certificate exited 0")
		}
		a.waitLine(`action: tls_handshake \| result: fail`, time.Second)
		c.waitLine(`action: tls_handshake \| result: fail .*revoked by TLS_DENY_SERIALS`, 5*time.Second)
	})
	t.Run("StalledHandshake", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte{0x16, 0x03, 0x01}) // a TLS record begins, then nothing
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		var b [1]byte
		if _, err := conn.Read(b[:]); err == nil {
			t.Fatal("a stalled handshake got an answer")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a stalled handshake was not cut by IDLE_TIMEOUT")
		}
	})
	t.Run("RoundOverTLS", func(t *testing.T) {
		// Agencies 1 and 2 finish over TLS. Agency 3's certificate is revoked
		// and no other certificate may speak for it (forbidden, above), so
		// the draw keeps waiting for it.
		a1 := tlsAgency(t, 1, "agency-1", "ca")
		a2 := tlsAgency(t, 2, "agency-2", "ca")
		for _, a := range []*proc{a1, a2} {
			a.waitLine(`action: fin_envio \| result: success`, time.Minute)
		}
		c.waitLine(`action: agencia_finalizada \| result: success \| agencia: 2`, 5*time.Second)
		if got := len(c.grep(`action: sorteo`)); got != 0 {
			t.Fatalf("the draw ran without agency 3 (%d sorteo lines)", got)
		}
		for _, a := range []*proc{a1, a2} {
			a.signal(sigterm)
			a.wait(time.Minute)
		}
	})
}

// A whole round over mutual TLS: every bet exactly once, every winner.
func TestTLS_WholeRound(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	db := filepath.Join(t.TempDir(), "bets.db")
	c := startCentral(t, db, 3, p.centralEnv()...)
	want := expectedWinners(t, genData, 3)
	agencies := []*proc{nil}
	for id := 1; id <= 3; id++ {
		agencies = append(agencies, startAgency(t, c, id, genData,
			append(p.agencyEnv(fmt.Sprintf("agency-%d", id), "ca"), "CLI_SERVER_ADDRESS=localhost:"+c.addr[len("127.0.0.1:"):])...))
	}
	waitAgencies(t, agencies, want)
	c.signal(sigterm)
	c.wait(time.Minute)
	rep := verifyStore(t, db, genData, 3)
	total := 0
	for id := 1; id <= 3; id++ {
		total += len(fileBets(t, genData, id))
	}
	if rep.total != total {
		t.Fatalf("stored %d bets over TLS, want %d", rep.total, total)
	}
	checkRoundRecord(t, p, db, agencies[1:])
}

// checkRoundRecord exports the drawn round's signed record from the store
// at db and checks it as a regulator would, with the agencies' files: it
// verifies, each agency's logged digest is its line's, and a record cut
// short, re-signed, edited, of another round or held to other data is
// refused with one line naming the check, exit 1.
func checkRoundRecord(t *testing.T, p testPKI, db string, agencies []*proc) {
	t.Helper()
	dir := t.TempDir()
	rec := filepath.Join(dir, "round.json")
	if out, err := runServer("export", "--db", db, "--round", rec); err != nil {
		t.Fatalf("export --round: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	for id := range agencies {
		b, _ := os.ReadFile(filepath.Join(genData, fmt.Sprintf("agency-%d.csv", id+1)))
		os.WriteFile(filepath.Join(data, fmt.Sprintf("agency-%d.csv", id+1)), b, 0o600)
	}
	out, err := runServer("verify-round", rec, "--ca", p.file("ca.crt"), "--data", data)
	if err != nil || !strings.Contains(out, "the signature is good") || !strings.Contains(out, "agencies' bets and winners are those of") {
		t.Fatalf("verify-round: %v\n%s", err, out)
	}
	file, _ := os.ReadFile(rec)
	for id, a := range agencies {
		line := a.waitLine(`action: fin_envio \| result: success`, time.Second)
		digest := line[strings.LastIndex(line, " ")+1:]
		if !strings.Contains(string(file), `"agency":`+strconv.Itoa(id+1)+`,"bets":`) || !strings.Contains(string(file), `"digest":"`+digest+`"`) {
			t.Errorf("agency %d logged digest %s, which is not its line of the record", id+1, digest)
		}
	}
	agency, err := pki.Read(p.dir, "agency-1")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Record record.Record `json:"record"`
	}
	if err := json.Unmarshal(file, &body); err != nil {
		t.Fatal(err)
	}
	resigned, _ := body.Record.Sign(agency.Key, agency.Cert)
	other := body.Record
	other.Round = "2026-01-02T03:04:05Z"
	otherRound, _ := other.Sign(agency.Key, agency.Cert)
	changed := filepath.Join(dir, "changed")
	os.MkdirAll(changed, 0o700)
	for id := range agencies {
		b, _ := os.ReadFile(filepath.Join(data, fmt.Sprintf("agency-%d.csv", id+1)))
		if id == 1 {
			b = append(b, []byte("Ana,Paz,12345678,1990-01-01,7574\n")...) // a bet the central never stored
		}
		os.WriteFile(filepath.Join(changed, fmt.Sprintf("agency-%d.csv", id+1)), b, 0o600)
	}
	for _, tt := range []struct {
		name string
		file []byte
		args []string
		want string
	}{
		{"Truncated", file[:len(file)/2], nil, "not a whole round record"},
		{"ResignedByAnAgency", resigned, nil, "the record's signer is not a central of this lottery"},
		{"Edited", bytes.Replace(file, []byte(`"winning_number":7574`), []byte(`"winning_number":7575`), 1), nil, "the signature does not match the record"},
		{"OtherRound", otherRound, nil, "signer is not a central"},
		{"NotThisRound", file, []string{"--round", "2026-01-02T03:04:05Z"}, "the record is of another round"},
		{"OtherData", file, []string{"--data", changed}, "the agencies' data differ from the record: agency 2"},
		{"ForeignCA", file, []string{"--ca", p.file("foreign-ca.crt")}, "the record's signer is not a central of this lottery"},
	} {
		path := filepath.Join(dir, tt.name+".json")
		os.WriteFile(path, tt.file, 0o600)
		args := append([]string{"verify-round", path, "--ca", p.file("ca.crt")}, tt.args...)
		out, err := runServer(args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || len(lines) != 1 || !strings.Contains(out, tt.want) {
			t.Errorf("%s: %v, want exit 1 and one line saying %q:\n%s", tt.name, err, tt.want, out)
		}
	}
}
