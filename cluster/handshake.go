package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// The replicas' handshake is the first exchange on a replica's connection,
// right after its Marker (inside TLS when TLS is on), before raft speaks:
//
//	hello (dialer)    version u8 = 1 | cluster ID [16] | from u32 | to u32
//	reply (acceptor)  status u8 (0 accepted, 1 refused) | cluster ID [16] | node u32 | reason: len u8 + UTF-8
//	about (dialer)    0xE2 | len u8 + UTF-8   (only to an acceptor whose reply says it reads it)
//
// The acceptor takes the connection only from a member of its cluster (its
// raft configuration, or CLUSTER_NODES until it has one) that names this
// node as the one it dialled, carries the same cluster ID, and, over TLS,
// holds that member's certificate; the dialer takes it only from the node it
// meant, of its own cluster. Every raft message travels on a connection that
// passed both checks. Both sides bound the exchange by handshakeTimeout, so
// a connection that only sent the Marker cannot hold a slot.
//
// What a node says of itself (info) travels in the reply's reason, before
// the refusal's own words if any, and in the dialer's about frame:
//
//	tp0 v=2 state=member admin=http://10.0.0.1:8080 nonce=<hex> nodes=<hex> | why it refused
//
// v is the entry format it reads (the leader raises the cluster's version
// only once every member reads the new one), state whether it is a member,
// waits to bootstrap (fresh) or to be added (joining), admin its admin
// listener's URL (a follower's 409 names the leader's), nonce its bootstrap
// nonce and nodes a hash of its CLUSTER_NODES (bootstrap.go). A node of the
// first version sends an empty reason and no about frame; the about frame
// is sent only to an acceptor that says it reads it, and raft's own first
// byte on a connection is never 0xE2. A hello whose from has probeFlag set
// is a probe: the acceptor answers with its info and refuses the
// connection (bootstrap, and the leader's check of a node it is asked to
// add).
const (
	handshakeVersion = 1
	helloSize        = 1 + len(ID{}) + 4 + 4
	replyFixed       = 1 + len(ID{}) + 4 + 1
	handshakeTimeout = 5 * time.Second
	aboutFrame       = 0xE2
	probeFlag        = 1 << 31
)

// Handshake errors.
var (
	// ErrPeerRefused means a replica's connection was refused: another
	// cluster, a node that is not a member, the wrong node, or a
	// certificate that names another replica.
	ErrPeerRefused = errors.New("replica connection refused")
	// ErrClusterMismatch means the two ends belong to different clusters.
	ErrClusterMismatch = errors.New("cluster ID mismatch")
)

type hello struct {
	cluster  ID
	from, to int
	probe    bool
}

func writeHello(w io.Writer, h hello) error {
	b := make([]byte, 0, helloSize)
	b = append(b, handshakeVersion)
	b = append(b, h.cluster[:]...)
	from := uint32(h.from)
	if h.probe {
		from |= probeFlag
	}
	b = binary.BigEndian.AppendUint32(b, from)
	b = binary.BigEndian.AppendUint32(b, uint32(h.to))
	_, err := w.Write(b)
	return err
}

func readHello(r io.Reader) (hello, error) {
	var b [helloSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("%w: reading the replica's hello: %w", ErrPeerRefused, err)
	}
	if b[0] != handshakeVersion {
		return hello{}, fmt.Errorf("%w: handshake version %d, this node speaks %d", ErrPeerRefused, b[0], handshakeVersion)
	}
	var h hello
	copy(h.cluster[:], b[1:17])
	from := binary.BigEndian.Uint32(b[17:])
	h.probe, h.from, h.to = from&probeFlag != 0, int(from&^probeFlag), int(binary.BigEndian.Uint32(b[21:]))
	return h, nil
}

type reply struct {
	ok      bool
	cluster ID
	node    int
	reason  string
}

func writeReply(w io.Writer, r reply) error {
	reason := r.reason
	if len(reason) > 255 {
		reason = reason[:255]
	}
	b := make([]byte, 0, replyFixed+len(reason))
	status := byte(1)
	if r.ok {
		status = 0
	}
	b = append(b, status)
	b = append(b, r.cluster[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(r.node))
	b = append(b, byte(len(reason)))
	b = append(b, reason...)
	_, err := w.Write(b)
	return err
}

func readReply(r io.Reader) (reply, error) {
	var b [replyFixed]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return reply{}, fmt.Errorf("%w: reading the peer's reply: %w", ErrPeerRefused, err)
	}
	if b[0] > 1 {
		return reply{}, fmt.Errorf("%w: reply status %d", ErrPeerRefused, b[0])
	}
	rp := reply{ok: b[0] == 0, node: int(binary.BigEndian.Uint32(b[17:]))}
	copy(rp.cluster[:], b[1:17])
	reason := make([]byte, b[replyFixed-1])
	if _, err := io.ReadFull(r, reason); err != nil {
		return reply{}, fmt.Errorf("%w: reading the peer's reply: %w", ErrPeerRefused, err)
	}
	rp.reason = string(reason)
	return rp, nil
}

// The states a node says it is in.
const (
	stateMember  = "member"  // it belongs to a cluster (its raft state has one)
	stateFresh   = "fresh"   // it waits to bootstrap with the others of its CLUSTER_NODES
	stateJoining = "joining" // it waits to be added (CLUSTER_JOIN)
)

// info is what a node says of itself in a handshake.
type info struct {
	version int // the entry format it reads; 1: a node of the first version, which says nothing
	state   string
	admin   string
	nonce   Nonce
	nodes   string
}

// maxAdmin bounds an admin URL in a handshake (the reason is 255 bytes).
const maxAdmin = 96

func (i info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tp0 v=%d state=%s", i.version, i.state)
	if i.admin != "" && len(i.admin) <= maxAdmin && !strings.ContainsAny(i.admin, " |") {
		b.WriteString(" admin=" + i.admin)
	}
	if i.nonce != (Nonce{}) {
		b.WriteString(" nonce=" + i.nonce.String())
	}
	if i.nodes != "" {
		b.WriteString(" nodes=" + i.nodes)
	}
	return b.String()
}

// parseInfo reads what a peer said of itself in text (a reply's reason or
// an about frame), and the rest of it: a refusal's words. A text that does
// not start with "tp0 " is a node of the first version's: version 1.
func parseInfo(text string) (info, string) {
	head, rest, _ := strings.Cut(text, " | ")
	if !strings.HasPrefix(head, "tp0 ") {
		return info{version: 1}, text
	}
	var i info
	for _, f := range strings.Fields(head)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "v":
			i.version, _ = strconv.Atoi(v)
		case "state":
			i.state = v
		case "admin":
			i.admin = v
		case "nonce":
			i.nonce, _ = parseNonce(v)
		case "nodes":
			i.nodes = v
		}
	}
	return i, rest
}

// reason is a reply's reason: this node's info, then why it refused.
func (i info) reason(why error) string {
	if why == nil {
		return i.String()
	}
	return i.String() + " | " + why.Error()
}

func writeAbout(w io.Writer, i info) error {
	text := i.String()
	_, err := w.Write(append([]byte{aboutFrame, byte(len(text))}, text...))
	return err
}

// readAbout reads the dialer's about frame, if it sent one, from r, whose
// first bytes are otherwise raft's: it returns the dialer's info (version 0
// when there was none) and the connection to hand to raft, which reads
// from where the about frame ended.
func readAbout(conn net.Conn) (info, net.Conn, error) {
	br := bufio.NewReaderSize(conn, 512)
	first, err := br.Peek(1)
	if err != nil {
		return info{}, nil, fmt.Errorf("%w: reading the replica's first message: %w", ErrPeerRefused, err)
	}
	rc := &readerConn{Conn: conn, r: br}
	if first[0] != aboutFrame {
		return info{}, rc, nil
	}
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return info{}, nil, fmt.Errorf("%w: reading the replica's about frame: %w", ErrPeerRefused, err)
	}
	text := make([]byte, head[1])
	if _, err := io.ReadFull(br, text); err != nil {
		return info{}, nil, fmt.Errorf("%w: reading the replica's about frame: %w", ErrPeerRefused, err)
	}
	i, _ := parseInfo(string(text))
	return i, rc, nil
}

// readerConn is a connection read through a buffer that may hold its
// first bytes.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }
