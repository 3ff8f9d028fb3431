package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/protocol"
)

const sigterm = syscall.SIGTERM

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, content)
	return path
}

// echo sends msg as netcat would and returns what came back.
func echo(t *testing.T, addr, msg string) string {
	t.Helper()
	got, err := tryEcho(addr, msg)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// tryEcho is echo that returns its error.
func tryEcho(addr, msg string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return got, err
	}
	return got, nil
}

// rawClient speaks the protocol directly, to send what a real agency never would.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *protocol.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, r: protocol.NewReader(conn, 0)}
}

func (c *rawClient) send(m protocol.Message) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := protocol.Write(c.conn, m); err != nil {
		c.t.Fatalf("send %s: %v", m.Kind(), err)
	}
}

func (c *rawClient) sendRaw(b []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// recv returns the next message, or nil with the error.
func (c *rawClient) recv() (protocol.Message, error) {
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c.r.Next()
}

// expectError waits for an Error reply of code.
func (c *rawClient) expectError(code protocol.Code) *protocol.Error {
	c.t.Helper()
	m, err := c.recv()
	if err != nil {
		c.t.Fatalf("want %s error reply, got %v", code, err)
	}
	e, ok := m.(*protocol.Error)
	if !ok || e.Code != code {
		c.t.Fatalf("want %s error reply, got %#v", code, m)
	}
	return e
}

// expectClosed waits for the central to close the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	for {
		_, err := c.recv()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("central kept the connection open")
		}
		return
	}
}

func (c *rawClient) hello(agency int) *protocol.Welcome {
	c.t.Helper()
	c.send(&protocol.Hello{Agency: agency, Mode: protocol.ModeCSV})
	m, err := c.recv()
	if err != nil {
		c.t.Fatal(err)
	}
	w, ok := m.(*protocol.Welcome)
	if !ok {
		c.t.Fatalf("hello answered %#v", m)
	}
	return w
}
