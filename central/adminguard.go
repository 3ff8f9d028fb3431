package central

import (
	"crypto/subtle"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The admin listener is for operators. What keeps it theirs:
//
//   - bounded connections: at most adminMaxConns at once (more wait in the
//     kernel's backlog, costing no descriptor here), counted in the
//     descriptor reserve beside the agencies' sessions (fdReserve);
//   - timeouts on every phase (headers, whole request, idle keep-alive) and
//     a body limit, so an idle or trickling client cannot hold a connection;
//   - GET and HEAD only, but for the operators' commands (operate.go),
//     which need the token as a bearer credential however the listener is
//     reached, as does the backup;
//   - a Host check against DNS rebinding: a page on another site cannot
//     read it through a browser by resolving its own name to this address
//     (Host must be an IP literal, localhost, or a name in AdminHosts);
//   - with AdminToken, a credential on every route but /healthz and
//     /readyz (Authorization: Bearer TOKEN, or the token as a basic-auth
//     password, which a browser asks for);
//   - pprof only with AdminPprof.

// adminMaxConns bounds the admin listener's open connections.
const adminMaxConns = 16

// adminTimeouts are the admin server's; tests shorten them.
type adminTimeouts struct {
	header, request, write, idle time.Duration
}

var defaultAdminTimeouts = adminTimeouts{header: 5 * time.Second, request: 10 * time.Second, write: 60 * time.Second, idle: 30 * time.Second}

// adminMaxBody bounds a request body (only the commands have one: a small JSON).
const adminMaxBody = 1 << 10

// guardAdmin wraps the admin routes with the checks above.
func (c *Central) guardAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		command := operatorCommand(r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !command {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
			return
		}
		if !c.adminHost(r.Host) {
			http.Error(w, "unknown host name (ADMIN_HOSTS lists the names this listener answers to)", http.StatusMisdirectedRequest)
			return
		}
		if command {
			if c.opts.AdminToken == "" {
				http.Error(w, "this command needs the admin token, and none is configured: set ADMIN_TOKEN", http.StatusForbidden)
				return
			}
			if !bearerMatches(r, c.opts.AdminToken) {
				http.Error(w, "this command needs the admin token as a bearer credential (Authorization: Bearer TOKEN; the server's commands read ADMIN_TOKEN)", http.StatusUnauthorized)
				return
			}
		}
		if tok := c.opts.AdminToken; tok != "" && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !tokenMatches(r, tok) {
			w.Header().Set("WWW-Authenticate", `Basic realm="central", charset="UTF-8"`)
			http.Error(w, "a credential is required (ADMIN_TOKEN)", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, adminMaxBody)
		next.ServeHTTP(w, r)
	})
}

// adminHost reports whether the Host header names this listener.
func (c *Central) adminHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return true
	}
	return slices.Contains(c.opts.AdminHosts, host)
}

// operatorCommand reports a request for one of the operators' commands
// (operate.go): a change, or the backup.
func operatorCommand(r *http.Request) bool {
	p := r.URL.Path
	switch r.Method {
	case http.MethodPost:
		return p == "/api/round" || p == "/api/cluster/servers"
	case http.MethodDelete:
		return strings.HasPrefix(p, "/api/cluster/servers/")
	case http.MethodGet, http.MethodHead:
		return p == "/api/backup"
	}
	return false
}

// bearerMatches checks the request's bearer token in constant time.
func bearerMatches(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// tokenMatches checks the request's credential in constant time.
func tokenMatches(r *http.Request, token string) bool {
	got := ""
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		got = strings.TrimPrefix(auth, "Bearer ")
	} else if _, pass, ok := r.BasicAuth(); ok {
		got = pass
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// limitListener accepts at most n connections open at once.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: conn, release: func() { <-l.slots }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
