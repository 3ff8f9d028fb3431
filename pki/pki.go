// Package pki makes and reads the lottery's certificates: a CA, the
// central's certificate and one per agency, each agency's carrying its id in
// one place, a URI SAN "urn:loteria:agency:N". Only the standard library is
// used (crypto/x509, ECDSA P-256); files are PEM, keys written 0600.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// agencyURIPrefix starts the URI SAN that names an agency.
const agencyURIPrefix = "urn:loteria:agency:"

// ErrNoAgency means a certificate names no agency (or more than one).
var ErrNoAgency = errors.New("certificate names no agency")

// replicaURIPrefix starts the URI SAN that names a replica of the central.
const replicaURIPrefix = "urn:loteria:central:"

// ErrNoReplica means a certificate names no replica (or more than one).
var ErrNoReplica = errors.New("certificate names no replica of the central")

// ReplicaURI is the URI SAN of replica id's certificate.
func ReplicaURI(id int) *url.URL {
	u, _ := url.Parse(replicaURIPrefix + strconv.Itoa(id))
	return u
}

// ReplicaID returns the replica a certificate names in its URI SAN.
func ReplicaID(cert *x509.Certificate) (int, error) {
	return uriID(cert, replicaURIPrefix, ErrNoReplica)
}

// AgencyURI is the URI SAN of agency id's certificate.
func AgencyURI(id int) *url.URL {
	u, _ := url.Parse(agencyURIPrefix + strconv.Itoa(id))
	return u
}

// AgencyID returns the agency a certificate names in its URI SAN.
func AgencyID(cert *x509.Certificate) (int, error) {
	return uriID(cert, agencyURIPrefix, ErrNoAgency)
}

// uriID reads the one id a certificate's URI SANs give after prefix.
func uriID(cert *x509.Certificate, prefix string, none error) (int, error) {
	id := 0
	for _, u := range cert.URIs {
		s := u.String()
		if !strings.HasPrefix(s, prefix) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(s, prefix))
		if err != nil || n < 1 || id != 0 {
			return 0, fmt.Errorf("%w: URI SAN %q", none, s)
		}
		id = n
	}
	if id == 0 {
		return 0, none
	}
	return id, nil
}

// Pair is a certificate with its key.
type Pair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Spec says what to issue.
type Spec struct {
	NotBefore, NotAfter time.Time
}

// NewCA makes a self-signed CA.
func NewCA(name string, s Spec) (Pair, error) {
	return issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Lotería Nacional"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, s, Pair{})
}

// NewServer issues the central's certificate for its names and addresses.
func NewServer(ca Pair, names []string, ips []net.IP, s Spec) (Pair, error) {
	return issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "central", Organization: []string{"Lotería Nacional"}},
		DNSNames:    names,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, s, ca)
}

// NewReplica issues replica id's certificate: the central's server
// certificate for agencies (its names and addresses) and, as a client, its
// identity to the other replicas (the URI SAN urn:loteria:central:N).
func NewReplica(ca Pair, id int, names []string, ips []net.IP, s Spec) (Pair, error) {
	return issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: fmt.Sprintf("central %d", id), Organization: []string{"Lotería Nacional"}},
		DNSNames:    names,
		IPAddresses: ips,
		URIs:        []*url.URL{ReplicaURI(id)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, s, ca)
}

// NewAgency issues agency id's client certificate.
func NewAgency(ca Pair, id int, s Spec) (Pair, error) {
	return issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: fmt.Sprintf("agency %d", id), Organization: []string{"Lotería Nacional"}},
		URIs:        []*url.URL{AgencyURI(id)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, s, ca)
}

// issue signs tmpl with parent (self-signed when parent has no key).
func issue(tmpl *x509.Certificate, s Spec, parent Pair) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Pair{}, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = s.NotBefore, s.NotAfter
	signer, issuer := crypto.Signer(key), tmpl
	if parent.Key != nil {
		signer, issuer = parent.Key, parent.Cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		return Pair{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Cert: cert, Key: key}, nil
}

// Write writes the pair as base.crt and base.key (0600) in dir.
func (p Pair) Write(dir, base string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.Key)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, base+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, base+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw}), 0o644)
}

// writeFile writes data to a temp file and renames it over path, so a
// reader never sees half a key.
func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".pki-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), mode)); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

// Read reads base.crt and base.key from dir.
func Read(dir, base string) (Pair, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, base+".crt"))
	if err != nil {
		return Pair{}, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, base+".key"))
	if err != nil {
		return Pair{}, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return Pair{}, fmt.Errorf("%s: not PEM", filepath.Join(dir, base))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return Pair{}, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return Pair{}, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return Pair{}, fmt.Errorf("%s.key: not a signing key", base)
	}
	return Pair{Cert: cert, Key: signer}, nil
}

// Use says what a certificate is loaded for: Load checks the certificate
// is one for that use, so a pair that cannot work is refused at start and
// not at the first handshake.
type Use func(*x509.Certificate) error

// Central is the use of the central's server certificate: for TLS servers,
// and not an agency's (a central holding an agency's pair would speak for it).
func Central(c *x509.Certificate) error {
	if !hasUsage(c, x509.ExtKeyUsageServerAuth) {
		return errors.New("is not a server certificate (no serverAuth usage): is it an agency's?")
	}
	if id, err := AgencyID(c); err == nil {
		return fmt.Errorf("names agency %d: it is an agency's certificate, not the central's", id)
	}
	return nil
}

// Replica is the use of replica id's certificate: a server certificate for
// agencies and a client one for the other replicas, naming that replica and
// no agency.
func Replica(id int) Use {
	return func(c *x509.Certificate) error {
		if err := Central(c); err != nil {
			return err
		}
		if !hasUsage(c, x509.ExtKeyUsageClientAuth) {
			return errors.New("is not a replica's certificate (no clientAuth usage to dial the other replicas): make certs -replicas N")
		}
		got, err := ReplicaID(c)
		if err != nil {
			return fmt.Errorf("names no replica (make certs -replicas N issues central-N.crt): %w", err)
		}
		if got != id {
			return fmt.Errorf("is replica %d's certificate, not replica %d's", got, id)
		}
		return nil
	}
}

// Agency is the use of agency id's client certificate: for TLS clients, and
// naming that agency.
func Agency(id int) Use {
	return func(c *x509.Certificate) error {
		if !hasUsage(c, x509.ExtKeyUsageClientAuth) {
			return errors.New("is not a client certificate (no clientAuth usage): is it the central's?")
		}
		got, err := AgencyID(c)
		if err != nil {
			return fmt.Errorf("names no agency: %w", err)
		}
		if got != id {
			return fmt.Errorf("is agency %d's certificate, not agency %d's", got, id)
		}
		return nil
	}
}

func hasUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true // no restriction
	}
	return slices.Contains(c.ExtKeyUsage, u) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// Load reads a certificate and its key (PEM files) and a CA bundle, for
// mutual TLS. It checks what would otherwise fail later and less clearly:
// that the certificate is valid at now, is for use, and is signed by the
// CA, and that every certificate in the bundle is a CA. Errors name the file
// and the reason.
func Load(certFile, keyFile, caFile string, use Use, now time.Time) (tls.Certificate, *x509.CertPool, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
		pair.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, nil, fmt.Errorf("certificate %s expired on %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return tls.Certificate{}, nil, fmt.Errorf("certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if use != nil {
		if err := use(leaf); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("certificate %s %w", certFile, err)
		}
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	for rest, n := caPEM, 0; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			if n == 0 {
				return tls.Certificate{}, nil, fmt.Errorf("CA %s: no PEM certificate in it", caFile)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("CA %s: %w", caFile, err)
		}
		if !ca.IsCA || !ca.BasicConstraintsValid {
			return tls.Certificate{}, nil, fmt.Errorf("CA %s: %q is not a CA certificate (a leaf, such as the central's or an agency's?)", caFile, ca.Subject.CommonName)
		}
		pool.AddCert(ca)
	}
	opts := x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := leaf.Verify(opts); err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("certificate %s is not signed by the CA %s: %w", certFile, caFile, err)
	}
	return pair, pool, nil
}

// Serial is a certificate's serial number as the deny list writes it:
// lower-case hex, no separators.
func Serial(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }
