package pki

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAgencyID(t *testing.T) {
	t.Parallel()
	now := time.Now()
	spec := Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	ca, err := NewCA("ca", spec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAgency(ca, 42, spec)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := AgencyID(a.Cert); err != nil || id != 42 {
		t.Fatalf("AgencyID = %d, %v", id, err)
	}
	srv, _ := NewServer(ca, []string{"server"}, []net.IP{net.IPv4(127, 0, 0, 1)}, spec)
	if _, err := AgencyID(srv.Cert); err == nil {
		t.Fatal("the central's certificate names an agency")
	}
	for _, bad := range []string{"urn:loteria:agency:0", "urn:loteria:agency:x", "urn:loteria:agency:-1"} {
		u, _ := url.Parse(bad)
		a.Cert.URIs = []*url.URL{u}
		if _, err := AgencyID(a.Cert); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	a.Cert.URIs = []*url.URL{AgencyURI(1), AgencyURI(2)}
	if _, err := AgencyID(a.Cert); err == nil {
		t.Error("two agencies in one certificate accepted")
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	spec := Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	ca, _ := NewCA("ca", spec)
	other, _ := NewCA("other", spec)
	good, _ := NewAgency(ca, 1, spec)
	old, _ := NewAgency(ca, 1, Spec{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)})
	server, _ := NewServer(ca, []string{"localhost"}, nil, spec)
	for name, p := range map[string]Pair{"ca": ca, "other": other, "good": good, "old": old, "server": server} {
		if err := p.Write(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "good.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("key written %v", st.Mode().Perm())
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	if _, _, err := Load(f("good.crt"), f("good.key"), f("ca.crt"), Agency(1), now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(f("server.crt"), f("server.key"), f("ca.crt"), Central, now); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cert, key, ca string
		use           Use
		want          string
	}{
		{"old.crt", "old.key", "ca.crt", nil, "expired on"},
		{"good.crt", "good.key", "other.crt", nil, "not signed by the CA"},
		{"good.crt", "old.key", "ca.crt", nil, "private key does not match"},
		{"none.crt", "good.key", "ca.crt", nil, "none.crt"},
		{"good.crt", "good.key", "none.crt", nil, "none.crt"},
		{"good.crt", "good.key", "good.key", nil, "no PEM certificate"},
		// Pairs that cannot work are refused at start.
		{"good.crt", "good.key", "ca.crt", Central, "is not a server certificate"},
		{"server.crt", "server.key", "ca.crt", Agency(1), "is not a client certificate"},
		{"good.crt", "good.key", "ca.crt", Agency(2), "is agency 1's certificate, not agency 2's"},
		{"server.crt", "server.key", "server.crt", Central, "is not a CA certificate"},
	} {
		if _, _, err := Load(f(tt.cert), f(tt.key), f(tt.ca), tt.use, now); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%s, %s, %s) = %v, want %q", tt.cert, tt.key, tt.ca, err, tt.want)
		}
	}
}
