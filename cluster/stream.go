package cluster

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/protocol"
)

// Marker is the first byte of a replica's connection on the central's
// port (protocol.ReplicaMarker), as 0xA1 is an agency's and 0x16 a TLS
// handshake: one address per node everywhere. Over TLS it is the first byte
// inside the tunnel.
const Marker = protocol.ReplicaMarker

// streamLayer carries raft's traffic on the central's listener: the
// central hands over each connection that starts with Marker (Handoff),
// and Dial opens one to a peer, writing Marker first.
type streamLayer struct {
	addr  net.Addr
	conns chan net.Conn
	tls   *tls.Config // a replica's client config for its peers; nil: plaintext
	dial  func(address string, timeout time.Duration) (net.Conn, error)

	once   sync.Once
	closed chan struct{}
}

func newStreamLayer(addr net.Addr, tlsConf *tls.Config) *streamLayer {
	return &streamLayer{addr: addr, conns: make(chan net.Conn), tls: tlsConf, closed: make(chan struct{})}
}

// handoff gives raft a connection whose Marker was read; it reports false
// (and the caller closes conn) when the layer is closed or raft does not
// take it within a second.
func (s *streamLayer) handoff(conn net.Conn) bool {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case s.conns <- conn:
		return true
	case <-s.closed:
	case <-t.C:
	}
	return false
}

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *streamLayer) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *streamLayer) Addr() net.Addr { return s.addr }

// Dial connects to a peer's central port and announces a replica.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	dial := s.dial
	if dial == nil {
		dial = func(a string, t time.Duration) (net.Conn, error) { return net.DialTimeout("tcp", a, t) }
	}
	conn, err := dial(string(address), timeout)
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		host, _, _ := net.SplitHostPort(string(address))
		conf := s.tls.Clone()
		conf.ServerName = host
		tc := tls.Client(conn, conf)
		tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte{Marker}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// staticAddr is the node's own address, as raft names it.
type staticAddr string

func (a staticAddr) Network() string { return "tcp" }
func (a staticAddr) String() string  { return string(a) }
