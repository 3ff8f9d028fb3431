package central

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/record"
)

// The drawn round's record (package record): written into the store once
// the round is drawn, signed with the central's key, its TLS certificate's
// (a replica's, on a cluster: by the node that led then). A central
// without TLS has no key: its record is written unsigned, and says so.
// `server export --round` writes it out; `server verify-round` checks it.

// signer is the key a central signs its records with, and its certificate.
type signer struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// signerOf is the key of conf's certificate (zero without TLS).
func signerOf(conf *tls.Config) signer {
	if conf == nil || len(conf.Certificates) == 0 || len(conf.Certificates[0].Certificate) == 0 {
		return signer{}
	}
	pair := conf.Certificates[0]
	key, ok := pair.PrivateKey.(crypto.Signer)
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if !ok || err != nil {
		return signer{}
	}
	return signer{key: key, cert: cert}
}

// recordRound writes the drawn round's signed record into the store, once
// (a record already there stays).
func (c *Central) recordRound() {
	r, err := c.store.Round()
	if err != nil || !r.Drawn {
		return
	}
	if have, err := c.store.Record(); err != nil || len(have) > 0 {
		return
	}
	sum, err := c.store.Summary()
	if err != nil {
		c.log.Errorf("action: acta | result: fail | error: %s", logformat.Value(err.Error()))
		return
	}
	rec := record.New(r.Started, r.DrawTime, r.AgencyCount(c.opts.Agencies), func(a int) (uint64, [lottery.DigestSize]byte, []string) {
		s := sum.Agencies[a]
		return s.Committed, s.Digest, r.Winners[a]
	})
	b, err := rec.Sign(c.signer.key, c.signer.cert)
	if err == nil {
		err = c.store.SetRecord(b)
	}
	if err != nil {
		c.log.Errorf("action: acta | result: fail | error: %s", logformat.Value(err.Error()))
		return
	}
	by := "nadie (sin TLS)"
	if c.signer.cert != nil {
		by = c.signer.cert.Subject.CommonName
	}
	c.log.Infof("action: acta | result: success | ronda: %s | apuestas: %d | firmante: %s", rec.Round, rec.Bets, logformat.Value(by))
}
