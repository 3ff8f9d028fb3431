package central

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/protocol"
)

// tlsRecord is the first byte of a TLS handshake record: on the shared port
// it tells a TLS client from a plaintext frame (0xA1) and an echo line.
const tlsRecord = 0x16

// AgencyTLS returns the TLS config of a central that serves agencies over
// mutual TLS: TLS 1.3, its own pair, client certificates required and
// verified against agencies (the lottery's CA), each naming one agency
// (pki.AgencyID), none of them revoked (revoked may be nil: none is). With
// replicas, a replica's certificate (pki.ReplicaID) is accepted too: the
// other nodes of its cluster dial in on the same port.
func AgencyTLS(pair tls.Certificate, agencies *x509.CertPool, revoked func(*x509.Certificate) bool, replicas bool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    agencies,
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			if revoked != nil && revoked(leaf) {
				return fmt.Errorf("certificate %s (%s) is revoked by TLS_DENY_SERIALS", pki.Serial(leaf), leaf.Subject.CommonName)
			}
			if replicas {
				if _, err := pki.ReplicaID(leaf); err == nil {
					return nil
				}
			}
			_, err := pki.AgencyID(leaf)
			return err
		},
	}
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
func (c *Central) serveTLS(ctx context.Context, conn net.Conn, br *bufio.Reader, slot *slot) {
	ip := remoteIP(conn)
	if c.tls == nil {
		// Say so in the protocol: the agency's TLS client reads a record
		// that is not TLS and can tell the operator why, instead of
		// retrying an EOF until its timeout.
		c.log.Warningf("action: tls_handshake | result: fail | ip: %s | error: TLS is not configured on this central (TLS_CERT)", ip)
		c.conns.armWrite(conn, c.opts.IdleTimeout)
		protocol.Write(conn, protocol.NewError(protocol.CodeForbidden, "this central is not configured for TLS"))
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
	leaf := tc.ConnectionState().PeerCertificates[0]
	if id, err := pki.ReplicaID(leaf); err == nil {
		// Another replica of the cluster: its first byte inside the tunnel
		// says so; a replica's certificate never speaks as an agency.
		var b [1]byte
		tc.SetReadDeadline(time.Now().Add(c.opts.IdleTimeout))
		if _, err := io.ReadFull(tc, b[:]); err != nil || b[0] != protocol.ReplicaMarker {
			c.log.Warningf("action: tls_handshake | result: fail | ip: %s | replica: %d | error: a replica's certificate, but not a replica's connection", ip, id)
			return
		}
		c.handoff(ctx, conn, tc, id, slot)
		return
	}
	agency, err := pki.AgencyID(leaf)
	if err != nil { // VerifyConnection already refused it
		return
	}
	if slot.spare(c.slots) {
		c.refuseOn(conn, tc)
		return
	}
	c.log.Debugf("action: tls_handshake | result: success | ip: %s | agencia: %d", ip, agency)
	s := &session{c: c, conn: tc, raw: conn, r: protocol.NewFrameReader(tc, protocol.MaxFrame), ip: ip, release: slot.release, certAgency: agency}
	s.run(ctx)
}
