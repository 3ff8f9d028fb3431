package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
)

// restartTable measures what a replica's store costs at a restart: a
// one-node cluster (the replica's code: an unsynced store, the clean
// marker, snapshots) takes agencies × bets, is stopped cleanly and started
// again (the store trusted as it is), then killed with -9 and started again
// (the store rebuilt from the latest snapshot and the log). Each start is
// timed from exec to /readyz answering 200: serving agencies again. It
// prints the longest apply while snapshots were taken during the ingest, as
// the apply-time histogram bounds it.
func (b *bench) restartTable(agencies, bets int) error {
	tmp, err := os.MkdirTemp("", "tp0-restart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	db := filepath.Join(tmp, "node-1", "bets.db")
	os.MkdirAll(filepath.Dir(db), 0o755)
	env := append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=" + port, "AGENCIES=" + strconv.Itoa(agencies),
		"DB_PATH=" + db, "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m", "ADMIN_ADDR=127.0.0.1:0",
		"CLUSTER_NODES=1=" + addr, "CLUSTER_NODE_ID=1"}, b.extraEnv...)
	start := func() (*proc, time.Duration, error) {
		t0 := time.Now()
		p, err := startProc(filepath.Join(b.bin, "server"), env, "action: admin_listen | result: success")
		if err != nil {
			return nil, 0, err
		}
		m := reAdmin.FindStringSubmatch(p.out.String())
		if m == nil {
			p.kill()
			return nil, 0, fmt.Errorf("no admin_listen line:\n%s", p.tail())
		}
		for deadline := t0.Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if resp, err := http.Get("http://" + m[1] + "/readyz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p, time.Since(t0), nil
				}
			}
		}
		p.kill()
		return nil, 0, fmt.Errorf("not serving after 5 minutes:\n%s", p.tail())
	}
	p, _, err := start()
	if err != nil {
		return err
	}
	res, err := swarm.Run(context.Background(), swarm.Config{Addr: addr, Agencies: agencies, Bets: bets, Window: 4, RetryTimeout: 10 * time.Minute})
	if err != nil {
		p.kill()
		return err
	}
	m := reAdmin.FindStringSubmatch(p.out.String())
	metrics, err := fetch("http://" + m[1] + "/metrics")
	if err != nil {
		p.kill()
		return err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		return fmt.Errorf("clean stop: %w\n%s", err, p.tail())
	}
	st, err := os.Stat(db)
	if err != nil {
		return err
	}
	fmt.Printf("one-node cluster: %d agencies × %d bets in %s (%.0f bets/s), store %d MiB; %s snapshots, the last %s s and %s MiB; the longest apply ≤ %s\n\n",
		agencies, bets, ms(res.Elapsed), float64(agencies*bets)/res.Elapsed.Seconds(), st.Size()>>20,
		metric(metrics, "tp0_cluster_snapshots_total"), metric(metrics, "tp0_cluster_snapshot_duration_seconds"),
		strconv.FormatFloat(parseFloat(metric(metrics, "tp0_cluster_snapshot_bytes"))/(1<<20), 'f', 0, 64), longestApply(metrics))
	fmt.Printf("| start | the store | exec → serving (/readyz 200) |\n|---|---|---:|\n")
	for _, kind := range []string{"after a clean stop", "after kill -9"} {
		p, took, err := start()
		if err != nil {
			return err
		}
		how := "rebuilt"
		if strings.Contains(p.out.String(), "almacen: confiable") {
			how = "trusted as it was"
		}
		fmt.Printf("| %s | %s | %s |\n", kind, how, ms(took))
		if kind == "after a clean stop" {
			p.kill() // the next start is after a kill -9
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(); err != nil {
			return fmt.Errorf("clean stop: %w\n%s", err, p.tail())
		}
	}
	return verifySwarm(db, agencies, bets, res)
}

// metric is the value of the sample name (whatever its labels) in a
// Prometheus text exposition, "?" when there is none.
func metric(body, name string) string {
	m := regexp.MustCompile(`(?m)^` + name + `(?:\{[^}]*\})? (\S+)`).FindStringSubmatch(body)
	if m == nil {
		return "?"
	}
	return m[1]
}

func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// longestApply says how long the longest applies took, from the apply-time
// histogram: the bound of the highest bucket that holds one, and how many
// fell in each bucket above 100 ms (the last finish's entry runs the draw,
// a scan of every bet: that one is expected among them).
func longestApply(metrics string) string {
	re := regexp.MustCompile(`(?m)^tp0_cluster_fsm_apply_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)`)
	var prev float64
	lower := "0"
	bound := "?"
	var slow []string
	for _, m := range re.FindAllStringSubmatch(metrics, -1) {
		n := parseFloat(m[2])
		if n > prev {
			bound = m[1] + " s"
			if parseFloat(m[1]) >= 0.2 || m[1] == "+Inf" {
				slow = append(slow, fmt.Sprintf("%.0f in (%s, %s] s", n-prev, lower, m[1]))
			}
		}
		prev, lower = math.Max(prev, n), m[1]
	}
	if len(slow) == 0 {
		return bound
	}
	return bound + " (" + strings.Join(slow, ", ") + ")"
}
