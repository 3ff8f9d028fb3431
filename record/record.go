// Package record is the record of a drawn round that a regulator can
// verify: the round's id and draw time, the winning number, and per agency
// its bets' count and digest (lottery.Digest, as the agency logs it) and
// its winners' documents; signed by the central that drew it with its own
// key (its TLS certificate's), so that the record cannot be edited, moved
// to another round or re-signed by someone else without it showing.
//
// The file is JSON: the record as it was signed, byte for byte, and its
// signature with the signer's certificate:
//
//	{"record": {"format": "tp0-round-record-1", "round": ..., "agencies": [...]},
//	 "signer": "urn:loteria:central:1", "certificate": "-----BEGIN CERTIFICATE-----...",
//	 "signature": "<base64 of the signature of the record's bytes' SHA-256>"}
//
// A central without TLS has no key: its record is written unsigned, and
// Verify refuses it (ErrUnsigned).
package record

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/pki"
)

// Format names this version of the record.
const Format = "tp0-round-record-1"

// Errors of Open and Verify: each names the check that failed.
var (
	// ErrNotARecord means the file is not a whole round record (truncated,
	// or not one at all).
	ErrNotARecord = errors.New("not a whole round record")
	// ErrUnsigned means the record carries no signature.
	ErrUnsigned = errors.New("the record is not signed")
	// ErrSigner means the certificate that signed it is not a central's
	// certificate of the CA given.
	ErrSigner = errors.New("the record's signer is not a central of this lottery")
	// ErrSignature means the signature is not the record's: it was changed
	// after it was signed.
	ErrSignature = errors.New("the signature does not match the record")
	// ErrRound means the record is of another round than the one asked.
	ErrRound = errors.New("the record is of another round")
	// ErrData means an agency's bets or winners are not what the record says.
	ErrData = errors.New("the agencies' data differ from the record")
)

// Record is what a drawn round was.
type Record struct {
	Format string `json:"format"`
	// Round is the round's id: its start, RFC 3339 with nanoseconds (the
	// day bets were validated as of).
	Round    string   `json:"round"`
	DrawTime string   `json:"draw_time"`
	Number   int      `json:"winning_number"`
	Bets     uint64   `json:"bets"`
	Agencies []Agency `json:"agencies"`
}

// Agency is an agency's line of a record.
type Agency struct {
	Agency int    `json:"agency"`
	Bets   uint64 `json:"bets"`
	// Digest is the hex of lottery.Digest's sum over its bets in order.
	Digest string `json:"digest"`
	// Winners are its winners' documents, in registry order.
	Winners []string `json:"winners"`
}

// New is the record of a round that started at started and was drawn at
// drawn, of the agencies 1..agencies (each its bets' count, digest and
// winners).
func New(started, drawn time.Time, agencies int, count func(agency int) (bets uint64, digest [lottery.DigestSize]byte, winners []string)) Record {
	r := Record{Format: Format, Round: started.UTC().Format(time.RFC3339Nano), DrawTime: drawn.UTC().Format(time.RFC3339Nano), Number: lottery.WinnerNumber}
	for a := 1; a <= agencies; a++ {
		bets, digest, winners := count(a)
		if winners == nil {
			winners = []string{}
		}
		r.Agencies = append(r.Agencies, Agency{Agency: a, Bets: bets, Digest: hex.EncodeToString(digest[:]), Winners: winners})
		r.Bets += bets
	}
	return r
}

// Started is the round's start.
func (r Record) Started() (time.Time, error) { return time.Parse(time.RFC3339Nano, r.Round) }

// signed is the record's file.
type signed struct {
	Record      json.RawMessage `json:"record"`
	Signer      string          `json:"signer"`
	Certificate string          `json:"certificate,omitempty"`
	Signature   string          `json:"signature,omitempty"`
}

// Sign returns the record's file, signed with key, whose certificate is
// cert (nil key: unsigned).
func (r Record) Sign(key crypto.Signer, cert *x509.Certificate) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	s := signed{Record: body, Signer: "none: the central ran without TLS, and has no key to sign with"}
	if key != nil {
		sum := sha256.Sum256(body)
		sig, err := key.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("signing the round's record: %w", err)
		}
		s.Signer = signerName(cert)
		s.Certificate = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
		s.Signature = base64.StdEncoding.EncodeToString(sig)
	}
	// One field a line, the record's bytes as they were signed (an
	// indenting encoder would change them).
	var out bytes.Buffer
	out.WriteString("{\n  \"record\": ")
	out.Write(s.Record)
	for _, f := range [][2]string{{"signer", s.Signer}, {"certificate", s.Certificate}, {"signature", s.Signature}} {
		if f[1] == "" {
			continue
		}
		v, err := json.Marshal(f[1])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&out, ",\n  %q: %s", f[0], v)
	}
	out.WriteString("\n}\n")
	return out.Bytes(), nil
}

// signerName names a certificate as the record says who signed it.
func signerName(c *x509.Certificate) string {
	if id, err := pki.ReplicaID(c); err == nil {
		return pki.ReplicaURI(id).String()
	}
	return c.Subject.String()
}

// Verify reads a record's file and checks it: whole, signed, by a central's
// (or a replica's) certificate that roots verify (at the draw's time), and
// the signature is the record's. It returns the record and the signer.
func Verify(file []byte, roots *x509.CertPool) (Record, string, error) {
	var s signed
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil || len(s.Record) == 0 {
		return Record{}, "", fmt.Errorf("%w: %v", ErrNotARecord, errOr(err, "no record in it"))
	}
	var r Record
	rd := json.NewDecoder(bytes.NewReader(s.Record))
	rd.DisallowUnknownFields()
	if err := rd.Decode(&r); err != nil || r.Format != Format {
		return Record{}, "", fmt.Errorf("%w: %v", ErrNotARecord, errOr(err, "format "+r.Format))
	}
	if s.Signature == "" || s.Certificate == "" {
		return r, "", fmt.Errorf("%w: %s", ErrUnsigned, s.Signer)
	}
	block, _ := pem.Decode([]byte(s.Certificate))
	if block == nil {
		return r, "", fmt.Errorf("%w: its certificate is not PEM", ErrSigner)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return r, "", fmt.Errorf("%w: %v", ErrSigner, err)
	}
	drawn, err := time.Parse(time.RFC3339Nano, r.DrawTime)
	if err != nil {
		return r, "", fmt.Errorf("%w: draw time %q", ErrNotARecord, r.DrawTime)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: drawn, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return r, "", fmt.Errorf("%w: %s: %v", ErrSigner, signerName(cert), err)
	}
	if _, err := pki.ReplicaID(cert); err != nil && pki.Central(cert) != nil {
		return r, "", fmt.Errorf("%w: %s is not a central's certificate", ErrSigner, signerName(cert))
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return r, "", fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if err := checkSignature(cert, s.Record, sig); err != nil {
		return r, "", fmt.Errorf("%w: it was changed after %s signed it", ErrSignature, signerName(cert))
	}
	return r, signerName(cert), nil
}

// checkSignature checks sig, by cert's key, of body's SHA-256.
func checkSignature(cert *x509.Certificate, body, sig []byte) error {
	algo := map[x509.PublicKeyAlgorithm]x509.SignatureAlgorithm{x509.ECDSA: x509.ECDSAWithSHA256, x509.RSA: x509.SHA256WithRSA, x509.Ed25519: x509.PureEd25519}[cert.PublicKeyAlgorithm]
	if algo == x509.UnknownSignatureAlgorithm {
		return fmt.Errorf("a key of type %s", cert.PublicKeyAlgorithm)
	}
	return cert.CheckSignature(algo, body, sig)
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

// Check holds the record to the agencies' own view of the round: for each
// of its agencies, have gives the count, digest and winners of that
// agency's bets as it sent them (its CSV file read as it reads it); a
// difference is ErrData naming the agency.
func (r Record) Check(have func(agency int) (bets uint64, digest [lottery.DigestSize]byte, winners []string, err error)) error {
	for _, a := range r.Agencies {
		bets, digest, winners, err := have(a.Agency)
		if err != nil {
			return fmt.Errorf("%w: agency %d: %v", ErrData, a.Agency, err)
		}
		if d := hex.EncodeToString(digest[:]); bets != a.Bets || d != a.Digest {
			return fmt.Errorf("%w: agency %d: the record says %d bets with digest %s, its data %d with %s", ErrData, a.Agency, a.Bets, short(a.Digest), bets, short(d))
		}
		if !slices.Equal(winners, a.Winners) && len(winners)+len(a.Winners) > 0 {
			return fmt.Errorf("%w: agency %d: the record says winners %s, its data %s", ErrData, a.Agency, strings.Join(a.Winners, ","), strings.Join(winners, ","))
		}
	}
	return nil
}

func short(hexDigest string) string {
	if len(hexDigest) > 12 {
		return hexDigest[:12] + "…"
	}
	return hexDigest
}
