package agency

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
)

// maxEchoReply bounds the line an echo reply may be.
const maxEchoReply = 64 << 10

// echoLoop is the course's base client (exercises 1 to 4), for an agency with
// no bets to send: loop.amount times it connects, sends
// "[CLIENT id] Message N°k", reads the echoed line, logs it and closes, then
// waits loop.period. A failed exchange is retried like a session (reconnect.*).
func (a *Agency) echoLoop(ctx context.Context) error {
	id := a.opts.ID
	for k := 1; k <= a.opts.LoopAmount; k++ {
		msg := fmt.Sprintf("[CLIENT %d] Message N°%d", id, k)
		var reply string
		err := a.retry(ctx, func() (bool, error) {
			var err error
			reply, err = a.echoOnce(ctx, msg)
			return false, err
		})
		if err != nil {
			return err
		}
		a.log.Infof("action: receive_message | result: success | client_id: %d | msg: %s", id, logformat.Value(reply))
		if k < a.opts.LoopAmount {
			if err := sleep(ctx, a.opts.LoopPeriod); err != nil {
				return err
			}
		}
	}
	a.log.Infof("action: loop_finished | result: success | client_id: %d", id)
	return nil
}

// echoOnce sends msg on a new connection and returns the line that came
// back, without its line end.
func (a *Agency) echoOnce(ctx context.Context, msg string) (string, error) {
	nc, err := a.dial(ctx)
	if err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() }) // SIGTERM unblocks the exchange
	defer func() {
		stop()
		nc.Close()
		if ctx.Err() != nil {
			a.log.Infof("action: close_connection | result: success | direccion: %s", logformat.Value(a.addr()))
		}
	}()
	nc.SetDeadline(time.Now().Add(a.opts.ServerTimeout))
	if _, err := io.WriteString(nc, msg+"\n"); err != nil {
		return "", fmt.Errorf("send to %s: %w", a.addr(), err)
	}
	line, err := bufio.NewReader(io.LimitReader(nc, maxEchoReply)).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("read the echo from %s: %w", a.addr(), err)
	}
	return trimEOL(line), nil
}

func trimEOL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// dial connects to the central within server.timeout.
func (a *Agency) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: a.opts.ServerTimeout}
	nc, err := d.DialContext(ctx, "tcp", a.addr())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", a.addr(), err)
	}
	return nc, nil
}

// dialSession connects for a session: over mutual TLS when it is
// configured, completing the handshake within server.timeout.
func (a *Agency) dialSession(ctx context.Context) (net.Conn, error) {
	nc, err := a.dial(ctx)
	if err != nil || a.opts.TLS == nil {
		return nc, err
	}
	conf := a.opts.TLS
	if host, _, err := net.SplitHostPort(a.addr()); err == nil && host != conf.ServerName {
		conf = conf.Clone() // a cluster: the name of the node being dialled
		conf.ServerName = host
	}
	tc := tls.Client(nc, conf)
	hctx, cancel := context.WithTimeout(ctx, a.opts.ServerTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, a.tlsFailed(err)
	}
	return tc, nil
}

// tlsFailed logs a TLS failure and, when a retry cannot fix it (the
// central's certificate is not the lottery's, or the central refused ours),
// makes it permanent.
func (a *Agency) tlsFailed(err error) error {
	var (
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
	)
	if errors.As(err, &record) {
		// The central answered, but not in TLS: a plaintext central (it
		// sends a protocol error frame, 0xA1) or something else on its port.
		what := "something that is not TLS"
		if record.RecordHeader[0] == protocol.Marker {
			what = "the plaintext protocol: it is not configured for TLS (TLS_CERT, TLS_KEY, TLS_CLIENT_CA)"
		}
		err = fmt.Errorf("the central does not speak TLS: it answered with %s", what)
		a.log.Errorf("action: tls_handshake | result: fail | direccion: %s | error: %s", logformat.Value(a.addr()), logformat.Value(err.Error()))
		return permanent(fmt.Errorf("tls with %s: %w", a.addr(), err))
	}
	if remoteTLSAlert(err) || errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		a.log.Errorf("action: tls_handshake | result: fail | direccion: %s | error: %s", logformat.Value(a.addr()), logformat.Value(err.Error()))
		return permanent(fmt.Errorf("tls with %s: %w", a.addr(), err))
	}
	return fmt.Errorf("tls with %s: %w", a.addr(), err)
}

// remoteTLSAlert reports whether err is an alert the central sent, as
// crypto/tls reports it: a *net.OpError "remote error" (bad certificate,
// certificate revoked, ...).
func remoteTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}
