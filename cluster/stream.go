package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/protocol"
)

// Marker is the first byte of a replica's connection on the central's
// port (protocol.ReplicaMarker), as 0xA1 is an agency's and 0x16 a TLS
// handshake: one address per node everywhere. Over TLS it is the first byte
// inside the tunnel.
const Marker = protocol.ReplicaMarker

// streamLayer carries raft's traffic on the central's listener: the
// central hands over each connection that starts with Marker (Handoff),
// and Dial opens one to a peer, writing Marker first. Both run the
// handshake (handshake.go) before raft sees the connection.
type streamLayer struct {
	self    int
	addr    net.Addr
	conns   chan net.Conn
	tls     *tls.Config // a replica's client config for its peers; nil: plaintext
	open    bool        // plaintext replicas are accepted (Config.Insecure)
	members *members
	ident   *identity
	about   func() info // what this node says of itself
	peers   *peers      // what its peers said of themselves
	// mismatch is told of a peer that answered as another cluster's member,
	// notMember of one of this cluster that refused this node as no member.
	mismatch  func(peer int, cluster ID)
	notMember func(peer int)
	cut       func(peer int) bool // Hooks.Cut; nil: never

	mu   sync.Mutex
	live map[*peerConn]struct{}

	once   sync.Once
	closed chan struct{}
}

func newStreamLayer(self int, addr net.Addr, tlsConf *tls.Config, open bool, m *members, ident *identity, about func() info, ps *peers, cut func(int) bool) *streamLayer {
	s := &streamLayer{self: self, addr: addr, conns: make(chan net.Conn), tls: tlsConf, open: open, members: m, ident: ident, about: about, peers: ps, cut: cut,
		live: map[*peerConn]struct{}{}, closed: make(chan struct{})}
	if cut != nil {
		go s.enforceCuts()
	}
	return s
}

// peerConn is a replica connection that passed the handshake.
type peerConn struct {
	net.Conn
	peer  int
	layer *streamLayer
	once  sync.Once
}

func (c *peerConn) Close() error {
	c.once.Do(func() {
		c.layer.mu.Lock()
		delete(c.layer.live, c)
		c.layer.mu.Unlock()
	})
	return c.Conn.Close()
}

func (s *streamLayer) track(conn net.Conn, peer int) *peerConn {
	pc := &peerConn{Conn: conn, peer: peer, layer: s}
	s.mu.Lock()
	s.live[pc] = struct{}{}
	s.mu.Unlock()
	return pc
}

// enforceCuts closes the connections of peers that Hooks.Cut cuts off.
func (s *streamLayer) enforceCuts() {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		s.mu.Lock()
		var gone []*peerConn
		for c := range s.live {
			if s.cut(c.peer) {
				gone = append(gone, c)
			}
		}
		s.mu.Unlock()
		for _, c := range gone {
			c.Close()
		}
	}
}

// handoff runs the acceptor's side of the handshake on conn, whose Marker
// was read, and gives it to raft. certID is the replica the TLS client
// certificate names (0 in plaintext). It returns the peer's id, and an
// error when the connection is refused (the caller closes it then). A
// probe is answered with this node's info and refused.
func (s *streamLayer) handoff(conn net.Conn, certID int) (int, error) {
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	h, err := readHello(conn)
	if err != nil {
		return 0, err
	}
	me := s.about()
	if h.probe {
		if err := s.admitProbe(h, certID); err != nil {
			writeReply(conn, reply{cluster: s.ident.get(), node: s.self, reason: me.reason(err)})
			return h.from, err
		}
		writeReply(conn, reply{cluster: s.ident.get(), node: s.self, reason: me.reason(ErrProbe)})
		return h.from, ErrProbe
	}
	if err := s.admit(h, certID); err != nil {
		writeReply(conn, reply{cluster: s.ident.get(), node: s.self, reason: me.reason(err)})
		return h.from, err
	}
	if err := writeReply(conn, reply{ok: true, cluster: s.ident.get(), node: s.self, reason: me.String()}); err != nil {
		return h.from, fmt.Errorf("%w: answering the handshake: %w", ErrPeerRefused, err)
	}
	peer, rc, err := readAbout(conn)
	if err != nil {
		return h.from, err
	}
	if peer.version > 0 {
		s.peers.heard(h.from, peer)
	}
	conn.SetDeadline(time.Time{})
	pc := s.track(rc, h.from)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case s.conns <- pc:
		return h.from, nil
	case <-s.closed:
	case <-t.C:
	}
	pc.Close()
	return h.from, fmt.Errorf("%w: raft did not take the connection", ErrPeerRefused)
}

// notAMember is how a refusal says the dialer is not a member.
const notAMember = "is not a member of this cluster"

// ErrProbe is a probe's answer: the connection was only a question (a
// node bootstrapping, or the leader checking a node it adds).
var ErrProbe = errors.New("a probe: answered, and closed")

// admitProbe checks a probe: from a replica of this deployment (its
// certificate, over TLS), and never from this node.
func (s *streamLayer) admitProbe(h hello, certID int) error {
	switch {
	case s.tls == nil && !s.open:
		return fmt.Errorf("%w: replica traffic in plaintext is refused (mutual TLS, or CLUSTER_INSECURE=true)", ErrPeerRefused)
	case h.from == s.self || h.from < 1:
		return fmt.Errorf("%w: a probe that claims to come from node %d", ErrPeerRefused, h.from)
	case s.tls != nil && certID != h.from:
		return fmt.Errorf("%w: the certificate names replica %d, the probe claims node %d", ErrPeerRefused, certID, h.from)
	}
	return nil
}

// admit checks a dialer's hello.
func (s *streamLayer) admit(h hello, certID int) error {
	switch {
	case s.tls == nil && !s.open:
		return fmt.Errorf("%w: replica traffic in plaintext is refused (mutual TLS, or CLUSTER_INSECURE=true)", ErrPeerRefused)
	case h.to != s.self:
		return fmt.Errorf("%w: this is node %d, not node %d", ErrPeerRefused, s.self, h.to)
	case h.from == s.self || h.from < 1:
		return fmt.Errorf("%w: a connection that claims to come from node %d", ErrPeerRefused, h.from)
	case s.tls != nil && certID != h.from:
		return fmt.Errorf("%w: the certificate names replica %d, the connection claims node %d", ErrPeerRefused, certID, h.from)
	case !s.members.isMember(h.from):
		return fmt.Errorf("%w: node %d %s", ErrPeerRefused, h.from, notAMember)
	case s.cut != nil && s.cut(h.from):
		return fmt.Errorf("%w: the network to node %d is cut (test)", ErrPeerRefused, h.from)
	}
	return s.ident.check(h.cluster)
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

// Dial connects to a peer's central port, announces a replica and runs the
// dialer's side of the handshake: the other end must be the member raft
// knows at address, of this node's cluster (and, over TLS, hold that
// member's certificate).
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	to, ok := s.members.at(string(address))
	if !ok {
		return nil, fmt.Errorf("%w: no member of this cluster at %s", ErrPeerRefused, address)
	}
	conn, r, err := s.handshake(string(address), to, false, timeout)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) {
		conn.Close()
		return nil, err
	}
	peer, why := parseInfo(r.reason)
	if !r.ok {
		own := s.ident.get()
		switch {
		case !r.cluster.IsZero() && r.cluster != own && !own.IsZero() && s.mismatch != nil:
			s.mismatch(to, r.cluster)
		case r.cluster == own && strings.Contains(why, notAMember) && s.notMember != nil:
			s.notMember(to)
		}
		return fail(fmt.Errorf("%w: node %d at %s: %s", ErrPeerRefused, to, address, why))
	}
	if r.node != to {
		return fail(fmt.Errorf("%w: %s is node %d, not node %d", ErrPeerRefused, address, r.node, to))
	}
	if err := s.ident.check(r.cluster); err != nil {
		if errors.Is(err, ErrClusterMismatch) && s.mismatch != nil {
			s.mismatch(to, r.cluster)
		}
		return fail(fmt.Errorf("node %d at %s: %w", to, address, err))
	}
	s.peers.heard(to, peer)
	if peer.version >= 2 {
		if err := writeAbout(conn, s.about()); err != nil {
			return fail(err)
		}
	}
	conn.SetDeadline(time.Time{})
	return s.track(conn, to), nil
}

// probe asks node id at address what it is, and closes the connection.
func (s *streamLayer) probe(address string, id int, timeout time.Duration) (reply, info, error) {
	conn, r, err := s.handshake(address, id, true, timeout)
	if err != nil {
		return reply{}, info{}, err
	}
	conn.Close()
	i, _ := parseInfo(r.reason)
	return r, i, nil
}

// handshake dials address, announces a replica and sends the hello (a
// probe's, with probe) to node to; it returns the connection and the reply.
func (s *streamLayer) handshake(address string, to int, probe bool, timeout time.Duration) (net.Conn, reply, error) {
	if s.cut != nil && s.cut(to) {
		return nil, reply{}, fmt.Errorf("%w: the network to node %d is cut (test)", ErrPeerRefused, to)
	}
	if s.tls == nil && !s.open {
		return nil, reply{}, fmt.Errorf("%w: replica traffic in plaintext is refused (mutual TLS, or CLUSTER_INSECURE=true)", ErrPeerRefused)
	}
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, reply{}, err
	}
	fail := func(err error) (net.Conn, reply, error) {
		conn.Close()
		return nil, reply{}, err
	}
	conn.SetDeadline(deadline)
	if s.tls != nil {
		host, _, _ := net.SplitHostPort(address)
		conf := s.tls.Clone()
		conf.ServerName = host
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			id, err := pki.ReplicaID(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if id != to {
				return fmt.Errorf("%w: %s holds replica %d's certificate, not node %d's", ErrPeerRefused, address, id, to)
			}
			return nil
		}
		tc := tls.Client(conn, conf)
		if err := tc.Handshake(); err != nil {
			return fail(err)
		}
		conn = tc
	}
	if _, err := conn.Write([]byte{Marker}); err != nil {
		return fail(err)
	}
	if err := writeHello(conn, hello{cluster: s.ident.get(), from: s.self, to: to, probe: probe}); err != nil {
		return fail(err)
	}
	r, err := readReply(conn)
	if err != nil {
		return fail(err)
	}
	return conn, r, nil
}

// staticAddr is the node's own address, as raft names it.
type staticAddr string

func (a staticAddr) Network() string { return "tcp" }
func (a staticAddr) String() string  { return string(a) }

func parseServerID(id raft.ServerID) (int, error) { return strconv.Atoi(string(id)) }

func serverID(id int) raft.ServerID { return raft.ServerID(strconv.Itoa(id)) }
