package central

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminCentral serves a test central's admin routes on a free port.
func adminCentral(t *testing.T, edit func(*Options), timeouts adminTimeouts) (*Central, string) {
	t.Helper()
	c := newTestCentralWith(t, 1, edit)
	c.adminTimeouts = timeouts
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ServeAdmin(ln)
	t.Cleanup(func() { c.Close() })
	return c, ln.Addr().String()
}

// request sends raw HTTP on a new connection and returns the status line.
func request(t *testing.T, addr, raw string) (net.Conn, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return conn, ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return conn, resp.Status
}

func get(host, path string, headers ...string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, host, strings.Join(headers, ""))
}

func TestAdmin_Guard(t *testing.T) {
	_, addr := adminCentral(t, nil, defaultAdminTimeouts)
	_, tokAddr := adminCentral(t, func(o *Options) { o.AdminToken = "s3cret"; o.AdminHosts = []string{"central.example"} }, defaultAdminTimeouts)
	_, pprofAddr := adminCentral(t, func(o *Options) { o.AdminPprof = true }, defaultAdminTimeouts)
	for _, tt := range []struct {
		name, addr, raw, want string
	}{
		{"OK", addr, get(addr, "/healthz"), "200 OK"},
		{"ErrPost", addr, "POST /healthz HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 3\r\n\r\nabc", "405 Method Not Allowed"},
		{"ErrRebindHost", addr, get("evil.example:8080", "/api/status"), "421 Misdirected Request"},
		{"LocalhostHost", addr, get("localhost", "/api/status"), "200 OK"},
		{"ErrPprofOffByDefault", addr, get(addr, "/debug/pprof/"), "404 Not Found"},
		{"PprofWhenAsked", pprofAddr, get(pprofAddr, "/debug/pprof/"), "200 OK"},
		{"ErrNoToken", tokAddr, get(tokAddr, "/metrics"), "401 Unauthorized"},
		{"ErrWrongToken", tokAddr, get(tokAddr, "/", "Authorization: Bearer guess\r\n"), "401 Unauthorized"},
		{"Bearer", tokAddr, get(tokAddr, "/metrics", "Authorization: Bearer s3cret\r\n"), "200 OK"},
		{"BasicPassword", tokAddr, get(tokAddr, "/", "Authorization: Basic b3BlcmF0b3I6czNjcmV0\r\n"), "200 OK"}, // operator:s3cret
		{"HealthWithoutToken", tokAddr, get(tokAddr, "/readyz"), "503 Service Unavailable"},
		{"ListedHost", tokAddr, get("central.example", "/metrics", "Authorization: Bearer s3cret\r\n"), "200 OK"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := request(t, tt.addr, tt.raw); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// waitClosed reports whether the server closes conn within d.
func waitClosed(conn net.Conn, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := conn.Read(make([]byte, 1))
	return err == io.EOF
}

// Idle keep-alive connections and requests whose body never comes are
// closed by the server (they once stayed open for good).
func TestAdmin_Timeouts(t *testing.T) {
	_, addr := adminCentral(t, nil, adminTimeouts{header: 300 * time.Millisecond, request: 300 * time.Millisecond, write: time.Second, idle: 300 * time.Millisecond})
	t.Run("IdleKeepAlive", func(t *testing.T) {
		conn, status := request(t, addr, get(addr, "/healthz"))
		if status != "200 OK" {
			t.Fatal(status)
		}
		if !waitClosed(conn, 10*time.Second) {
			t.Fatal("an idle keep-alive connection stayed open")
		}
	})
	t.Run("HeadersNeverEnd", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n")
		if !waitClosed(conn, 10*time.Second) {
			t.Fatal("a request whose headers never end held its connection")
		}
	})
}

// At most adminMaxConns connections are served at once; the next waits
// (in the kernel's backlog, costing no descriptor) until one closes.
func TestAdmin_ConnectionCap(t *testing.T) {
	_, addr := adminCentral(t, nil, defaultAdminTimeouts)
	var held []net.Conn
	for range adminMaxConns {
		conn, status := request(t, addr, get(addr, "/healthz"))
		if status != "200 OK" {
			t.Fatal(status)
		}
		held = append(held, conn)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	io.WriteString(extra, get(addr, "/healthz"))
	r := bufio.NewReader(extra)
	extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := r.ReadByte(); err == nil {
		t.Fatalf("connection %d was served beside %d open ones", adminMaxConns+1, adminMaxConns)
	}
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a close, the waiting connection got %v, %v", resp, err)
	}
	resp.Body.Close()
}
