// Command bench measures the whole flow end to end: the central and N agencies
// as processes on 127.0.0.1, from the central's start to the last agency's
// exit, verified on every run (stored count, winners per agency).
//
//	go run ./scripts/bench -mode flow  [-runs 5] [-data DIR]   # make bench
//	go run ./scripts/bench -mode scale                         # make bench-scale
//	go run ./scripts/bench -mode swarm [-agencies 1,100,1000,10000] [-bets 1000] [-kill-after 5s]  # make bench-swarm
//
// flow runs this system and a minimal reference pipeline (see ref.go) in the
// same run on the same data, and prints their figures and the ratio. scale
// runs generated data of 100k, 1M and 5M bets over 1, 10 and 100 agencies and
// prints a Markdown table (time, bets/s, peak memory, draw time, store size).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/store"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "ref-server" || os.Args[1] == "ref-agency") {
		run := map[string]func([]string) error{"ref-server": refServer, "ref-agency": refAgency}[os.Args[1]]
		if err := run(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		return
	}
	mode := flag.String("mode", "flow", "flow, scale or swarm")
	runs := flag.Int("runs", 5, "repetitions per configuration")
	bin := flag.String("bin", "bin", "folder with server and agency binaries")
	data := flag.String("data", "", "agency CSV folder (flow); default: the official dataset, else generated data")
	env := flag.String("env", "", "extra environment for the central and agencies, space-separated KEY=VALUE")
	withTLS := flag.Bool("tls", false, "flow: also run over mutual TLS, side by side with plaintext")
	withAdmin := flag.Bool("admin", false, "flow: also run with the admin listener on, scraped every second")
	swarmCounts := flag.String("agencies", "1,100,1000,10000", "swarm: agency counts, comma-separated")
	perAgency := flag.Int("bets", 1000, "swarm: bets per agency")
	window := flag.Int("window", 4, "swarm: batches in flight per agency")
	killAfter := flag.Duration("kill-after", 0, "swarm: kill -9 the central after this long and restart it (0: no kill)")
	hold := flag.Bool("hold", false, "swarm: measure what agencies waiting for the draw cost the central (the first count of -agencies)")
	flag.Parse()
	b := &bench{bin: *bin, extraEnv: strings.Fields(*env), tls: *withTLS, admin: *withAdmin}
	var err error
	switch *mode {
	case "flow":
		err = b.flow(*data, *runs)
	case "scale":
		err = b.scale(*runs)
	case "swarm":
		var counts []int
		for _, f := range strings.Split(*swarmCounts, ",") {
			n, cerr := strconv.Atoi(strings.TrimSpace(f))
			if cerr != nil || n < 1 {
				err = fmt.Errorf("-agencies: %q is not a count", f)
				break
			}
			counts = append(counts, n)
		}
		switch {
		case err != nil:
		case *hold:
			err = b.holdCost(counts[0], *perAgency)
		default:
			err = b.swarmTable(counts, *perAgency, *window, *killAfter)
		}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin      string
	extraEnv []string
	tls      bool
	admin    bool
}

// dataset describes agency files and what a correct run must produce.
type dataset struct {
	dir      string
	agencies int
	bets     int
	winners  map[int]int
	label    string
}

// scanData counts bets and 7574s per agency file.
func scanData(dir, label string) (dataset, error) {
	d := dataset{dir: dir, winners: map[int]int{}, label: label}
	for i := 1; ; i++ {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("agency-%d.csv", i)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return d, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			d.bets++
			if strings.HasSuffix(strings.TrimRight(sc.Text(), "\r"), ",7574") {
				d.winners[i]++
			}
		}
		f.Close()
		d.agencies = i
	}
	if d.agencies == 0 {
		return d, fmt.Errorf("no agency-N.csv in %s", dir)
	}
	return d, nil
}

// result is one verified run.
type result struct {
	wall     time.Duration
	cpu      time.Duration // central's user+system time
	peakRSS  int64         // central's peak resident set, KiB (includes mmapped store pages)
	peakAnon int64         // central's peak anonymous memory, KiB (heap, stacks: excludes the mmap)
	draw     time.Duration
	dbSize   int64
}

var (
	reWinners = regexp.MustCompile(`cant_ganadores: (\d+)`)
	reRefWin  = regexp.MustCompile(`^winners (\d+)`)
	reDraw    = regexp.MustCompile(`action: sorteo \| result: success .*duracion: (\S+)`)
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
		m := regexp.MustCompile(`action: admin_listen \| result: success \| address: (\S+)`).FindStringSubmatch(srv.out.String())
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

// makePKI writes a CA, the central's pair and agencies 1..n's into dir.
func makePKI(dir string, n int) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	now := time.Now()
	spec := pki.Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	ca, err := pki.NewCA("bench CA", spec)
	if err != nil {
		return "", err
	}
	pairs := map[string]func() (pki.Pair, error){
		"ca": func() (pki.Pair, error) { return ca, nil },
		"server": func() (pki.Pair, error) {
			return pki.NewServer(ca, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, spec)
		},
	}
	for i := 1; i <= n; i++ {
		pairs[fmt.Sprintf("agency-%d", i)] = func() (pki.Pair, error) { return pki.NewAgency(ca, i, spec) }
	}
	for name, mk := range pairs {
		p, err := mk()
		if err == nil {
			err = p.Write(dir, name)
		}
		if err != nil {
			return "", err
		}
	}
	return dir, nil
}

// defaultData extracts the official dataset when it is beside the project,
// else generates data of the same size.
func defaultData(tmp string) (dir, label string, err error) {
	dir = filepath.Join(tmp, "data")
	const zip = "../shared/tp0-dataset/dataset.zip"
	if _, err := os.Stat(zip); err == nil {
		out, err := exec.Command("go", "run", "./scripts/gendata", "-out", dir, "-zip", zip).CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("extract dataset: %v\n%s", err, out)
		}
		return dir, "official dataset", nil
	}
	return dir, "generated data, official size", generate(dir, 5, 78697)
}

func generate(dir string, agencies, bets int) error {
	out, err := exec.Command("go", "run", "./scripts/gendata", "-out", dir, "-agencies", strconv.Itoa(agencies),
		"-bets", strconv.Itoa(bets)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gendata: %v\n%s", err, out)
	}
	return nil
}

func (b *bench) scale(runs int) error {
	tmp, err := os.MkdirTemp("", "tp0-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Println("| agencies | bets | time | bets/s | central peak RSS | central peak anon | draw | store file |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, total := range []int{100_000, 1_000_000, 5_000_000} {
		for _, n := range []int{1, 10, 100} {
			dir := filepath.Join(tmp, fmt.Sprintf("d%d-%d", n, total))
			if err := generate(dir, n, total); err != nil {
				return err
			}
			d, err := scanData(dir, "generated")
			if err != nil {
				return err
			}
			var rs []result
			for range max(1, runs) {
				r, err := b.runOurs(d, tmp, "")
				if err != nil {
					return err
				}
				rs = append(rs, r)
			}
			w := summarize(rs, func(r result) time.Duration { return r.wall }).median
			draw := summarize(rs, func(r result) time.Duration { return r.draw }).median
			fmt.Printf("| %d | %d | %s | %.0f | %d MiB | %d MiB | %s | %d MiB |\n", n, total, ms(w), float64(total)/w.Seconds(),
				maxOf(rs, func(r result) int64 { return r.peakRSS })>>10, maxOf(rs, func(r result) int64 { return r.peakAnon })>>10,
				ms(draw), rs[0].dbSize>>20)
			os.RemoveAll(dir)
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }
