package main

import (
	"context"
	"fmt"
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
