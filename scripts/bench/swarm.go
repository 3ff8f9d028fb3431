package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
	"github.com/loteria-nacional/tp0/store"
)

// swarmRun is one swarm run's figures.
type swarmRun struct {
	agencies, bets int
	res            swarm.Result
	central        result        // the central's (last) process
	drawn          time.Duration // the draw's own duration
	recovery       time.Duration // kill -9 to the first batch stored after the restart
	killed         bool
}

// swarmOnce runs agencies × bets as goroutines of this process against the
// central binary, optionally killing the central with SIGKILL after
// killAfter and restarting it on the same port and store; it verifies every
// bet stored exactly once and every agency's winners.
func (b *bench) swarmOnce(agencies, bets, window int, killAfter time.Duration) (swarmRun, error) {
	tmp, err := os.MkdirTemp("", "tp0-swarm-")
	if err != nil {
		return swarmRun{}, err
	}
	defer os.RemoveAll(tmp)
	db := filepath.Join(tmp, "bets.db")
	env := append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=" + strconv.Itoa(agencies),
		"DB_PATH=" + db, "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m"}, b.extraEnv...)
	srv, err := startProc(filepath.Join(b.bin, "server"), env, "action: listen | result: success")
	if err != nil {
		return swarmRun{}, err
	}
	defer func() { srv.kill() }()
	addr := srv.firstLine[strings.LastIndex(srv.firstLine, " ")+1:]
	run := swarmRun{agencies: agencies, bets: bets}
	done := make(chan error, 1)
	go func() {
		var err error
		run.res, err = swarm.Run(context.Background(), swarm.Config{Addr: addr, Agencies: agencies, Bets: bets, Window: window,
			RetryTimeout: 10 * time.Minute})
		done <- err
	}()
	if killAfter > 0 {
		select {
		case err := <-done:
			done <- err // finished before the kill: reported unkilled
			killAfter = 0
		case <-time.After(killAfter):
		}
	}
	if killAfter > 0 {
		srv.kill()
		killed := time.Now()
		_, port, _ := strings.Cut(addr, ":")
		renv := append(env[:len(env):len(env)], "SERVER_PORT="+port)
		if srv, err = startProc(filepath.Join(b.bin, "server"), renv, "action: listen | result: success"); err != nil {
			return run, err
		}
		stored := regexp.MustCompile(`action: apuesta_recibida \| result: success \| cantidad: [1-9]`)
		for !stored.MatchString(srv.out.String()) {
			select {
			case err := <-done:
				return run, fmt.Errorf("the swarm ended before storing again: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		run.recovery, run.killed = time.Since(killed), true
	}
	if err := <-done; err != nil {
		return run, err
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := srv.wait(); err != nil {
		return run, fmt.Errorf("central: %w\n%s", err, srv.tail())
	}
	run.central = srv.usage(run.res.Elapsed)
	if m := reDraw.FindStringSubmatch(srv.out.String()); m != nil {
		run.drawn, _ = time.ParseDuration(m[1])
	}
	return run, verifySwarm(db, agencies, bets, run.res)
}

// verifySwarm checks the store and the winners of a swarm run.
func verifySwarm(db string, agencies, bets int, res swarm.Result) error {
	s, err := store.Open(db, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Round()
	if err != nil {
		return err
	}
	if r.Bets != uint64(agencies*bets) {
		return fmt.Errorf("WRONG RESULT: %d bets stored, want %d", r.Bets, agencies*bets)
	}
	want := swarm.Expected(agencies, bets)
	for a := 1; a <= agencies; a++ {
		if r.Committed[a] != uint64(bets) {
			return fmt.Errorf("WRONG RESULT: agency %d has %d bets committed, want %d", a, r.Committed[a], bets)
		}
		if len(res.Winners[a]) != want[a] || len(r.Winners[a]) != want[a] {
			return fmt.Errorf("WRONG RESULT: agency %d got %d winners (store %d), want %d", a, len(res.Winners[a]), len(r.Winners[a]), want[a])
		}
	}
	return nil
}

// swarmTable runs the swarm for each agency count with perAgency bets each
// and prints a Markdown table.
func (b *bench) swarmTable(counts []int, perAgency, window int, killAfter time.Duration) error {
	fmt.Println("| agencies | bets | time | bets/s | central peak RSS | central peak anon | anon per agency | draw | last finish → last winners | reconnects | peak reconnects/s | recovery after kill -9 |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range counts {
		r, err := b.swarmOnce(n, perAgency, window, killAfter)
		if err != nil {
			return fmt.Errorf("%d agencies: %w", n, err)
		}
		recovery := "-"
		if r.killed {
			recovery = ms(r.recovery)
		}
		total := n * perAgency
		fmt.Printf("| %d | %d | %s | %.0f | %d MiB | %d MiB | %.1f KiB | %s | %s | %d | %.0f | %s |\n",
			n, total, ms(r.res.Elapsed), float64(total)/r.res.Elapsed.Seconds(), r.central.peakRSS>>10, r.central.peakAnon>>10,
			float64(r.central.peakAnon)/float64(n), ms(r.drawn), ms(r.res.LastDone.Sub(r.res.LastAck)), r.res.Retries, r.res.PeakRetryRate, recovery)
	}
	return nil
}

// holdCost measures what agencies cost the central while they wait for the
// draw: the central expects n+1 agencies, n finish and wait; once all n
// wait, and again after a GC asked through the heap profile (ADMIN_PPROF),
// it reads the central's anonymous memory and its Go runtime figures from
// /metrics. n+1 must be a valid AGENCIES (at most 10,000).
func (b *bench) holdCost(n, bets int) error {
	tmp, err := os.MkdirTemp("", "tp0-hold-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env := append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=0", "AGENCIES=" + strconv.Itoa(n+1),
		"DB_PATH=" + filepath.Join(tmp, "bets.db"), "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m", "ADMIN_ADDR=127.0.0.1:0", "ADMIN_PPROF=true"}, b.extraEnv...)
	srv, err := startProc(filepath.Join(b.bin, "server"), env, "action: listen | result: success")
	if err != nil {
		return err
	}
	defer srv.kill()
	addr := srv.firstLine[strings.LastIndex(srv.firstLine, " ")+1:]
	m := regexp.MustCompile(`action: admin_listen \| result: success \| direccion: (\S+)`).FindStringSubmatch(srv.out.String())
	if m == nil {
		return fmt.Errorf("no admin_listen line")
	}
	metricsURL := "http://" + m[1] + "/metrics"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go swarm.Run(ctx, swarm.Config{Addr: addr, Agencies: n, Bets: bets, Window: 4, RetryTimeout: 10 * time.Minute})
	finished := regexp.MustCompile(`(?m)^tp0_agencies_finished (\d+)`)
	for {
		body, err := fetch(metricsURL)
		if err != nil {
			return err
		}
		if f := finished.FindStringSubmatch(body); f != nil && f[1] == strconv.Itoa(n) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("%d agencies waiting for the draw (%d bets each); the central's admin listener: http://%s/\n", n, bets, m[1])
	// The central allocates nothing while agencies wait, so the garbage of
	// ingestion stays counted until a GC: the second sample follows one,
	// asked through the admin listener's heap profile (?gc=1).
	for _, gc := range []bool{false, true} {
		if gc {
			if _, err := fetch("http://" + m[1] + "/debug/pprof/heap?gc=1"); err != nil {
				return err
			}
		} else {
			time.Sleep(time.Second)
		}
		body, err := fetch(metricsURL)
		if err != nil {
			return err
		}
		anon := rssAnon(srv.cmd.Process.Pid)
		label := "as they wait"
		if gc {
			label = "after a GC"
		}
		heap, _ := strconv.ParseFloat(metricValue(body, "go_memstats_heap_alloc_bytes", 1, ""), 64)
		stacks, _ := strconv.ParseFloat(metricValue(body, "go_memstats_stack_inuse_bytes", 1, ""), 64)
		fmt.Printf("  %-13s RssAnon %7d KiB (%5.1f KiB/agency)  live+garbage heap %7.1f MiB (%5.1f KiB/agency)  stacks %5.1f MiB (%4.1f KiB/agency)  goroutines %s\n",
			label, anon, float64(anon)/float64(n), heap/(1<<20), heap/1024/float64(n), stacks/(1<<20), stacks/1024/float64(n),
			metricValue(body, "go_goroutines", 1, ""))
	}
	return nil
}

func fetch(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metricValue reads a sample from an exposition (metric), scaled.
func metricValue(body, name string, scale float64, unit string) string {
	v := metric(body, name)
	if v == "?" {
		return v
	}
	return strings.TrimSpace(fmt.Sprintf("%.1f %s", parseFloat(v)/scale, unit))
}

// rssAnon reads a process's anonymous resident memory, in KiB.
func rssAnon(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
