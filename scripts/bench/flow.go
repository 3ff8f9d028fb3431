package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

// runOurs runs the central and the agencies of d once, over mutual TLS with
// the pairs in pkiDir when it is set.
func (b *bench) runOurs(d dataset, tmp, pkiDir string) (result, error) {
	return b.runOursWith(d, tmp, pkiDir, false)
}

// runOursWith is runOurs, with the admin listener on and scraped every
// second when scraped is set.
func (b *bench) runOursWith(d dataset, tmp, pkiDir string, scraped bool) (result, error) {
	db := filepath.Join(tmp, "bets.db")
	os.Remove(db)
	env := append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=" + strconv.Itoa(d.agencies),
		"DB_PATH=" + db, "MAX_CONNECTIONS=1024", "SERVER_LISTEN_BACKLOG=1024"}, b.extraEnv...)
	if scraped {
		env = append(env, "ADMIN_ADDR=127.0.0.1:0")
	}
	if pkiDir != "" {
		env = append(env, "TLS_CERT="+filepath.Join(pkiDir, "server.crt"), "TLS_KEY="+filepath.Join(pkiDir, "server.key"),
			"TLS_CLIENT_CA="+filepath.Join(pkiDir, "ca.crt"), "TLS_REQUIRED=true")
	}
	start := time.Now()
	srv, err := startProc(filepath.Join(b.bin, "server"), env, "action: listen | result: success")
	if err != nil {
		return result{}, err
	}
	defer srv.kill()
	// The central picked a free port; its listen line names it.
	_, port, _ := strings.Cut(srv.firstLine[strings.LastIndex(srv.firstLine, " ")+1:], ":")
	if scraped {
		m := regexp.MustCompile(`action: admin_listen \| result: success \| direccion: (\S+)`).FindStringSubmatch(srv.out.String())
		if m == nil {
			return result{}, fmt.Errorf("no admin_listen line")
		}
		stop := make(chan struct{})
		defer close(stop)
		go scrapeEverySecond("http://"+m[1]+"/metrics", stop)
	}
	agents := make([]*proc, d.agencies+1)
	for i := 1; i <= d.agencies; i++ {
		aenv := append([]string{"CLI_ID=" + strconv.Itoa(i), "CLI_SERVER_ADDRESS=127.0.0.1:" + port,
			"CLI_DATA_PATH=" + filepath.Join(d.dir, fmt.Sprintf("agency-%d.csv", i)), "CLI_WINNERS_TIMEOUT=30m"}, b.extraEnv...)
		if pkiDir != "" {
			aenv = append(aenv, "CLI_TLS_CA="+filepath.Join(pkiDir, "ca.crt"),
				"CLI_TLS_CERT="+filepath.Join(pkiDir, fmt.Sprintf("agency-%d.crt", i)),
				"CLI_TLS_KEY="+filepath.Join(pkiDir, fmt.Sprintf("agency-%d.key", i)))
		}
		if agents[i], err = startProc(filepath.Join(b.bin, "agency"), aenv, ""); err != nil {
			return result{}, err
		}
	}
	for i := 1; i <= d.agencies; i++ {
		if err := agents[i].wait(); err != nil {
			return result{}, fmt.Errorf("agency %d: %w\n%s", i, err, agents[i].tail())
		}
	}
	wall := time.Since(start)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.wait(); err != nil {
		return result{}, fmt.Errorf("central: %w\n%s", err, srv.tail())
	}
	r := srv.usage(wall)
	for i := 1; i <= d.agencies; i++ {
		m := reWinners.FindStringSubmatch(agents[i].out.String())
		if m == nil || m[1] != strconv.Itoa(d.winners[i]) {
			return result{}, fmt.Errorf("WRONG RESULT: agency %d reported %v winners, want %d", i, m, d.winners[i])
		}
	}
	if m := reDraw.FindStringSubmatch(srv.out.String()); m != nil {
		r.draw, _ = time.ParseDuration(m[1])
	}
	s, err := store.Open(db, store.Options{})
	if err != nil {
		return result{}, err
	}
	n, err := s.Count()
	s.Close()
	if err != nil || int(n) != d.bets {
		return result{}, fmt.Errorf("WRONG RESULT: %d bets stored, want %d (%v)", n, d.bets, err)
	}
	if st, err := os.Stat(db); err == nil {
		r.dbSize = st.Size()
	}
	return r, nil
}

// runRef runs the reference pipeline on d once.
func (b *bench) runRef(d dataset, tmp string) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	db := filepath.Join(tmp, "ref.db")
	os.Remove(db)
	start := time.Now()
	srv, err := startProc(self, nil, "listening ", "ref-server", "-db", db, "-agencies", strconv.Itoa(d.agencies))
	if err != nil {
		return result{}, err
	}
	defer srv.kill()
	addr := strings.TrimSpace(strings.TrimPrefix(srv.firstLine, "listening "))
	agents := make([]*proc, d.agencies+1)
	for i := 1; i <= d.agencies; i++ {
		if agents[i], err = startProc(self, nil, "", "ref-agency", "-addr", addr, "-id", strconv.Itoa(i),
			"-data", filepath.Join(d.dir, fmt.Sprintf("agency-%d.csv", i))); err != nil {
			return result{}, err
		}
	}
	for i := 1; i <= d.agencies; i++ {
		if err := agents[i].wait(); err != nil {
			return result{}, fmt.Errorf("ref agency %d: %w\n%s", i, err, agents[i].tail())
		}
		m := reRefWin.FindStringSubmatch(agents[i].out.String())
		if m == nil || m[1] != strconv.Itoa(d.winners[i]) {
			return result{}, fmt.Errorf("WRONG RESULT: reference agency %d reported %v winners, want %d", i, m, d.winners[i])
		}
	}
	wall := time.Since(start)
	if err := srv.wait(); err != nil {
		return result{}, err
	}
	return srv.usage(wall), nil
}

type stats struct{ min, median, max time.Duration }

func summarize(rs []result, f func(result) time.Duration) stats {
	v := make([]time.Duration, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return stats{v[0], v[len(v)/2], v[len(v)-1]}
}

func maxOf(rs []result, f func(result) int64) int64 {
	var m int64
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}

func (b *bench) flow(dataDir string, runs int) error {
	tmp, err := os.MkdirTemp("", "tp0-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	label := "data in " + dataDir
	if dataDir == "" {
		dataDir, label, err = defaultData(tmp)
		if err != nil {
			return err
		}
	}
	d, err := scanData(dataDir, label)
	if err != nil {
		return err
	}
	fmt.Printf("flow: %d agencies, %d bets (%s), %d runs each, interleaved; every run verified\n\n", d.agencies, d.bets, d.label, runs)
	pkiDir := ""
	if b.tls {
		if pkiDir, err = makePKI(filepath.Join(tmp, "pki"), d.agencies); err != nil {
			return err
		}
	}
	var ours, oursTLS, oursAdmin, ref []result
	for range runs {
		r, err := b.runOurs(d, tmp, "")
		if err != nil {
			return err
		}
		ours = append(ours, r)
		if b.tls {
			if r, err = b.runOurs(d, tmp, pkiDir); err != nil {
				return err
			}
			oursTLS = append(oursTLS, r)
		}
		if b.admin {
			if r, err = b.runOursWith(d, tmp, "", true); err != nil {
				return err
			}
			oursAdmin = append(oursAdmin, r)
		}
		if r, err = b.runRef(d, tmp); err != nil {
			return err
		}
		ref = append(ref, r)
	}
	fmt.Printf("%-10s %9s %9s %9s %12s %14s %14s %12s\n", "", "min", "median", "max", "bets/s", "peak RSS", "peak anon", "central CPU")
	for _, row := range []struct {
		name string
		rs   []result
	}{{"ours", ours}, {"ours+tls", oursTLS}, {"ours+admin", oursAdmin}, {"reference", ref}} {
		if len(row.rs) == 0 {
			continue
		}
		w := summarize(row.rs, func(r result) time.Duration { return r.wall })
		cpu := summarize(row.rs, func(r result) time.Duration { return r.cpu })
		fmt.Printf("%-10s %9s %9s %9s %12.0f %11d KiB %11d KiB %12s\n", row.name, ms(w.min), ms(w.median), ms(w.max),
			float64(d.bets)/w.median.Seconds(), maxOf(row.rs, func(r result) int64 { return r.peakRSS }),
			maxOf(row.rs, func(r result) int64 { return r.peakAnon }), ms(cpu.median))
	}
	o := summarize(ours, func(r result) time.Duration { return r.wall }).median
	rf := summarize(ref, func(r result) time.Duration { return r.wall }).median
	if b.tls {
		ot := summarize(oursTLS, func(r result) time.Duration { return r.wall }).median
		fmt.Printf("\nratio (median, ours over mutual TLS / ours in plaintext): %.2f", ot.Seconds()/o.Seconds())
	}
	if b.admin {
		oa := summarize(oursAdmin, func(r result) time.Duration { return r.wall }).median
		fmt.Printf("\nratio (median, ours with the admin listener scraped every second / ours without): %.2f", oa.Seconds()/o.Seconds())
	}
	fmt.Printf("\nratio (median, ours / reference): %.2f\n", o.Seconds()/rf.Seconds())
	return nil
}

// scrapeEverySecond fetches url every second until stop, as Prometheus would.
func scrapeEverySecond(url string, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		if resp, err := client.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}
