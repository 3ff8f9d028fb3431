package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/settings"
)

// tlsRecord is the first byte of a TLS handshake record: on the shared port
// it tells a TLS client from a plaintext frame (0xA1) and an echo line.
const tlsRecord = 0x16

// loadTLS builds the central's TLS config from TLS_CERT, TLS_KEY and
// TLS_CLIENT_CA (all or none), with TLS_DENY_SERIALS revoked. nil without TLS.
func loadTLS(o Options, now time.Time) (*tls.Config, error) {
	if o.TLSCert == "" && o.TLSKey == "" && o.TLSClientCA == "" {
		if o.TLSRequired {
			return nil, &settings.Error{Key: "TLS_REQUIRED", Value: "true", Reason: "needs TLS_CERT, TLS_KEY and TLS_CLIENT_CA"}
		}
		return nil, nil
	}
	for _, k := range []struct{ key, val string }{{"TLS_CERT", o.TLSCert}, {"TLS_KEY", o.TLSKey}, {"TLS_CLIENT_CA", o.TLSClientCA}} {
		if k.val == "" {
			return nil, &settings.Error{Key: k.key, Value: "", Reason: "must be set with the other TLS_ keys"}
		}
	}
	pair, pool, err := pki.Load(o.TLSCert, o.TLSKey, o.TLSClientCA, now)
	if err != nil {
		return nil, &settings.Error{Key: "TLS_CERT", Value: o.TLSCert, Reason: err.Error()}
	}
	deny := map[string]bool{}
	for _, s := range strings.Split(o.TLSDenySerials, ",") {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			deny[strings.TrimLeft(strings.ReplaceAll(s, ":", ""), "0")] = true
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			if deny[pki.Serial(leaf)] {
				return fmt.Errorf("certificate %s (%s) is revoked by TLS_DENY_SERIALS", pki.Serial(leaf), leaf.Subject.CommonName)
			}
			_, err := pki.AgencyID(leaf)
			return err
		},
	}, nil
}

// peekedConn reads what the buffered reader that peeked the first byte
// holds, then the connection itself (the buffer is dropped).
type peekedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// serveTLS runs the handshake (bounded by IDLE_TIMEOUT) and then an agency
// session inside it, as the agency its certificate names.
func (c *Central) serveTLS(ctx context.Context, conn net.Conn, br *bufio.Reader, release func()) {
	ip := remoteIP(conn)
	if c.tls == nil {
		c.log.Warningf("action: tls_handshake | result: fail | ip: %s | error: TLS is not configured on this central (TLS_CERT)", ip)
		return
	}
	tc := tls.Server(&peekedConn{Conn: conn, br: br}, c.tls)
	c.conns.armWrite(conn, c.opts.IdleTimeout)
	hctx, cancel := context.WithTimeout(ctx, c.opts.IdleTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		c.log.Warningf("action: tls_handshake | result: fail | ip: %s | error: %s", ip, logformat.Value(err.Error()))
		return
	}
	agency, err := pki.AgencyID(tc.ConnectionState().PeerCertificates[0])
	if err != nil { // VerifyConnection already refused it
		return
	}
	c.log.Debugf("action: tls_handshake | result: success | ip: %s | agencia: %d", ip, agency)
	s := &session{c: c, conn: tc, raw: conn, r: protocol.NewReader(tc, protocol.MaxFrame), ip: ip, release: release, certAgency: agency}
	s.run(ctx)
}
