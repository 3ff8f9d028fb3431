package record_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/record"
)

type keys struct {
	roots                             *x509.CertPool
	central, replica, agency, foreign pki.Pair
}

func newKeys(t *testing.T) keys {
	t.Helper()
	now := time.Now()
	spec := pki.Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	must := func(p pki.Pair, err error) pki.Pair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := must(pki.NewCA("test CA", spec))
	other := must(pki.NewCA("another CA", spec))
	k := keys{roots: x509.NewCertPool(),
		central: must(pki.NewServer(ca, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, spec)),
		replica: must(pki.NewReplica(ca, 2, []string{"localhost"}, nil, spec)),
		agency:  must(pki.NewAgency(ca, 1, spec)),
		foreign: must(pki.NewServer(other, []string{"localhost"}, nil, spec))}
	k.roots.AddCert(ca.Cert)
	return k
}

func round(started time.Time) record.Record {
	return record.New(started, started.Add(time.Minute), 2, func(a int) (uint64, [lottery.DigestSize]byte, []string) {
		return uint64(100 * a), [lottery.DigestSize]byte{byte(a)}, map[int][]string{1: {"30904465"}}[a]
	})
}

// A record signed by a central's key, or a replica's, verifies; one that
// is cut short, unsigned, signed by an agency's key or another CA's, or
// changed after it was signed, is refused with the check that failed.
func TestVerify(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	now := time.Now().UTC()
	good, err := round(now).Sign(k.central.Key, k.central.Cert)
	if err != nil {
		t.Fatal(err)
	}
	r, signer, err := record.Verify(good, k.roots)
	if err != nil || r.Bets != 300 || r.Agencies[0].Winners[0] != "30904465" || signer == "" {
		t.Fatalf("Verify = %+v, %q, %v", r, signer, err)
	}
	byReplica, _ := round(now).Sign(k.replica.Key, k.replica.Cert)
	if _, signer, err := record.Verify(byReplica, k.roots); err != nil || signer != "urn:loteria:central:2" {
		t.Fatalf("a replica's record: %q, %v", signer, err)
	}
	unsigned, _ := round(now).Sign(nil, nil)
	byAgency, _ := round(now).Sign(k.agency.Key, k.agency.Cert)
	byForeign, _ := round(now).Sign(k.foreign.Key, k.foreign.Cert)
	for name, tt := range map[string]struct {
		file []byte
		want error
	}{
		"Truncated":    {good[:len(good)/2], record.ErrNotARecord},
		"Empty":        {nil, record.ErrNotARecord},
		"Unsigned":     {unsigned, record.ErrUnsigned},
		"ByAnAgency":   {byAgency, record.ErrSigner},
		"ByAnotherCA":  {byForeign, record.ErrSigner},
		"WinnerEdited": {bytes.Replace(good, []byte("30904465"), []byte("30904466"), 1), record.ErrSignature},
		"CountEdited":  {bytes.Replace(good, []byte(`"bets":300`), []byte(`"bets":301`), 1), record.ErrSignature},
		"FieldAdded":   {bytes.Replace(good, []byte(`"signer"`), []byte(`"extra":1,"signer"`), 1), record.ErrNotARecord},
	} {
		if _, _, err := record.Verify(tt.file, k.roots); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", name, err, tt.want)
		}
	}
}

// Check holds the record to each agency's own view: its count, digest and
// winners, naming the agency that differs.
func TestRecord_Check(t *testing.T) {
	t.Parallel()
	r := round(time.Now())
	same := func(a int) (uint64, [lottery.DigestSize]byte, []string, error) {
		return uint64(100 * a), [lottery.DigestSize]byte{byte(a)}, map[int][]string{1: {"30904465"}}[a], nil
	}
	if err := r.Check(same); err != nil {
		t.Fatal(err)
	}
	for name, have := range map[string]func(a int) (uint64, [lottery.DigestSize]byte, []string, error){
		"Count": func(a int) (uint64, [lottery.DigestSize]byte, []string, error) {
			n, d, w, _ := same(a)
			return n + uint64(a/2), d, w, nil
		},
		"Digest": func(a int) (uint64, [lottery.DigestSize]byte, []string, error) {
			n, d, w, _ := same(a)
			d[5] = byte(a / 2)
			return n, d, w, nil
		},
		"Winners": func(a int) (uint64, [lottery.DigestSize]byte, []string, error) {
			n, d, _, _ := same(a)
			return n, d, nil, nil
		},
	} {
		if err := r.Check(have); !errors.Is(err, record.ErrData) {
			t.Errorf("%s: %v, want ErrData", name, err)
		}
	}
}
