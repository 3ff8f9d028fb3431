package central

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
)

// serveConn tells an echo health check from a protocol session, a TLS
// handshake and a replica's connection by the first byte. slot is the
// connection's (see slots.go): one over the agencies' limit is refused
// once it is known not to be a replica's.
func (c *Central) serveConn(ctx context.Context, conn net.Conn, slot *slot) {
	br := bufio.NewReaderSize(conn, peekBuffer)
	if !c.conns.armRead(conn, c.opts.IdleTimeout) {
		return
	}
	first, err := br.Peek(1)
	if errors.Is(err, io.EOF) {
		// A probe that connects and closes (a TCP health check): nothing failed.
		c.log.Debugf("action: receive_message | result: success | ip: %s | bytes: 0", remoteIP(conn))
		return
	}
	if err != nil {
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: %s", remoteIP(conn), logformat.Value(err.Error()))
		return
	}
	b := first[0]
	switch {
	case b == tlsRecord:
		c.serveTLS(ctx, conn, br, slot)
		return
	case b == protocol.ReplicaMarker && c.tls == nil:
		br.Discard(1)
		c.handoff(ctx, conn, &peekedConn{Conn: conn, br: br}, 0, slot)
		return
	case b == protocol.ReplicaMarker:
		c.log.Warningf("action: cluster_peer | result: fail | ip: %s | error: a replica's connection in plaintext, but replicas speak over mutual TLS here", remoteIP(conn))
		return
	case slot.spare(c.slots):
		c.refuse(conn)
		return
	}
	switch {
	case b == protocol.Marker && c.opts.TLSRequired:
		c.log.Warningf("action: receive_message | result: fail | ip: %s | codigo: forbidden | error: plaintext protocol refused: TLS is required (TLS_REQUIRED)", remoteIP(conn))
		c.conns.armWrite(conn, c.opts.IdleTimeout)
		protocol.Write(conn, protocol.NewError(protocol.CodeForbidden, "TLS is required: configure tls.ca, tls.cert and tls.key"))
	case b == protocol.Marker:
		s := &session{c: c, conn: conn, raw: conn, br: br, r: protocol.NewFrameReader(br, protocol.MaxFrame), ip: remoteIP(conn), release: slot.release}
		s.run(ctx)
	case b >= 0x20 && b < 0x7f || b == '\t':
		c.echo(conn, br)
	default:
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: first byte 0x%02x is neither text nor a protocol frame", remoteIP(conn), b)
		c.conns.armWrite(conn, c.opts.IdleTimeout)
		protocol.Write(conn, protocol.NewError(protocol.CodeMalformed, "first byte 0x%02x is neither text nor a protocol frame", b))
	}
}

// peekBuffer is the size of the buffer a connection is read through: its
// first byte is peeked, and a session's frames are read whole into their
// own buffers (a header's few bytes go through it). A session costs no
// more than this while it waits for its next frame.
const peekBuffer = 16

// maxEchoLine bounds the line an echo check may send.
const maxEchoLine = 64 << 10

// echo serves the netcat health check: one line in, the same line back. The
// line is logged escaped (logformat.Value): it comes from the network.
func (c *Central) echo(conn net.Conn, br *bufio.Reader) {
	ip := remoteIP(conn)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil || len(line) > maxEchoLine {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			break // a last line without a newline is echoed as it came
		}
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: %s", ip, logformat.Value(err.Error()))
		return
	}
	if len(line) > maxEchoLine {
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: line over %d bytes", ip, maxEchoLine)
		return
	}
	c.conns.armWrite(conn, c.opts.IdleTimeout)
	if _, err := conn.Write(line); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			// The peer left before its echo: its loss, not the central's failure.
			c.log.Debugf("action: receive_message | result: success | ip: %s | msg: %s | echo: peer gone", ip, logformat.Value(trimEOL(line)))
			return
		}
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: %s", ip, logformat.Value(err.Error()))
		return
	}
	if msg := trimEOL(line); msg == healthProbe {
		c.log.Debugf("action: receive_message | result: success | ip: %s | msg: %s", ip, msg)
	} else {
		c.log.Infof("action: receive_message | result: success | ip: %s | msg: %s", ip, logformat.Value(msg))
	}
}

// healthProbe is the line compose's health check sends every second: it is
// echoed like any other, and logged at DEBUG so it does not fill the log.
const healthProbe = "healthz"

func trimEOL(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}

func remoteIP(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return conn.RemoteAddr().String()
}
