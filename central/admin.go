package central

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loteria-nacional/tp0/logformat"
)

// The admin listener is for operators, never on the agencies' port:
//
//	/metrics  Prometheus metrics (client_golang)
//	/healthz  the process is up and its store readable
//	/readyz   the central accepts agencies (not starting, not shutting down)
//	/         the status page: the round, one row per agency, the draw
//	/api/status?page=N  the page's data as JSON (100 agencies a page)
//	/debug/pprof/       Go's profiles (heap, goroutines, CPU)
//
// The page is plain HTML rendered here (it works without JavaScript), with a
// little script that refreshes it every second; everything it needs is
// embedded, nothing comes from a CDN. It shows counts only: winners'
// documents are personal data and are not served.

//go:embed web
var webFS embed.FS

var statusPage = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"add": func(d, n int) int { return n + d },
	"pct": func(n, of uint64) uint64 {
		if of == 0 {
			return 0
		}
		return 100 * n / of
	},
}).ParseFS(webFS, "web/status.html"))

// pageSize is how many agencies a page shows, so 10,000 agencies stay cheap.
const pageSize = 100

// adminHandler returns the admin listener's routes.
func (c *Central) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	if c.opts.AdminPprof {
		// Go's profiles, for operators chasing CPU or memory: only when asked
		// (ADMIN_PPROF), as they show the process's insides.
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := c.store.Round(); err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.ready.Load() {
			http.Error(w, "not accepting agencies", http.StatusServiceUnavailable)
			return
		}
		if c.cluster != nil {
			if serving, leader := c.cluster.Leader(); !serving {
				http.Error(w, "a follower: agencies go to the leader, "+leader, http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
	rate := &rateMeter{}
	// withStatus hands a handler the requested page of the status, or
	// answers 503 when the store cannot be read.
	withStatus := func(render func(http.ResponseWriter, statusView)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := c.statusView(r, rate)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			render(w, v)
		}
	}
	c.operations(mux)
	mux.Handle("GET /api/status", withStatus(func(w http.ResponseWriter, v statusView) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(v)
	}))
	mux.Handle("GET /{$}", withStatus(func(w http.ResponseWriter, v statusView) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'")
		statusPage.Execute(w, v)
	}))
	return c.guardAdmin(mux)
}

// statusView is one page of the status, as the page and its JSON show it.
type statusView struct {
	roundStatus
	Page    int            `json:"page"`
	Pages   int            `json:"pages"`
	Rows    []agencyStatus `json:"rows"`
	Largest uint64         `json:"largest"` // the most bets any agency committed: the bars' scale
}

func (c *Central) statusView(r *http.Request, rate *rateMeter) (statusView, error) {
	st, err := c.status()
	if err != nil {
		return statusView{}, err
	}
	st.BetsPerS = rate.observe(st.Bets)
	v := statusView{roundStatus: st, Pages: max(1, (len(st.rows)+pageSize-1)/pageSize)}
	v.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	v.Page = min(max(v.Page, 1), v.Pages)
	for _, a := range st.rows {
		v.Largest = max(v.Largest, a.Committed)
	}
	v.Rows = st.rows[(v.Page-1)*pageSize : min(v.Page*pageSize, len(st.rows))]
	return v, nil
}

// rateMeter turns a growing count into a rate over at least a second.
type rateMeter struct {
	mu    sync.Mutex
	at    time.Time
	count uint64
	rate  float64
}

func (m *rateMeter) observe(count uint64) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.at.IsZero() {
		m.at, m.count = now, count
		return 0
	}
	if d := now.Sub(m.at); d >= time.Second {
		m.rate = float64(count-m.count) / d.Seconds()
		m.at, m.count = now, count
	}
	return m.rate
}

// ServeAdmin serves the admin routes on ln in the background until Close,
// which shuts it down before the store closes. Call it once, before Serve.
// See adminguard.go for what keeps the listener the operators'.
func (c *Central) ServeAdmin(ln net.Listener) {
	t := c.adminTimeouts
	srv := &http.Server{Handler: c.adminHandler(), ReadHeaderTimeout: t.header, ReadTimeout: t.request,
		WriteTimeout: t.write, IdleTimeout: t.idle, MaxHeaderBytes: 8 << 10}
	ln = newLimitListener(ln, adminMaxConns)
	c.admin = srv
	c.adminDone.Add(1)
	go func() {
		defer c.adminDone.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Errorf("action: admin | result: fail | error: %s", logformat.Value(err.Error()))
		}
	}()
}
