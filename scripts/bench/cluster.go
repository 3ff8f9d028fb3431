package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
)

// clusterTable runs the same swarm on one central and on a cluster of
// replicas (processes on this machine), side by side, then measures a
// failover: kill -9 of the leader mid-run, to the new leader, to the first
// bet acknowledged after the kill.
func (b *bench) clusterTable(counts []int, bets, replicas int) error {
	fmt.Printf("| agencies × bets | nodes | time | bets/s | vs one node |\n|---|---:|---:|---:|---:|\n")
	for _, n := range counts {
		per := bets
		if per == 0 {
			per = (78697 + n - 1) / n // the official dataset's size over n agencies
		}
		var one float64
		for _, nodes := range []int{1, replicas} {
			res, err := b.clusterOnce(n, per, nodes, 0)
			if err != nil {
				return err
			}
			rate := float64(n*per) / res.elapsed.Seconds()
			if nodes == 1 {
				one = rate
			}
			fmt.Printf("| %d × %d | %d | %s | %.0f | %.2f× |\n", n, per, nodes, ms(res.elapsed), rate, rate/one)
		}
	}
	fmt.Printf("\n| failover (%d nodes, 100 agencies × 5,000 bets, kill -9 of the leader after 1 s) | kill → new leader | kill → first ack |\n|---|---:|---:|\n", replicas)
	for run := 1; run <= 3; run++ {
		res, err := b.clusterOnce(100, 5000, replicas, time.Second)
		if err != nil {
			return err
		}
		first := "none: the round ended first"
		if res.firstAck > 0 {
			first = ms(res.firstAck)
		}
		fmt.Printf("| run %d | %s | %s |\n", run, ms(res.elected), first)
	}
	return nil
}

type clusterRun struct {
	elapsed, elected, firstAck time.Duration
}

var reLeader = regexp.MustCompile(`action: cluster_role \| result: success \| nodo: \d+ \| rol: (\w+)`)

// clusterOnce runs agencies × bets against nodes centrals (1: no cluster),
// killing the leader after killAfter (0: no kill), and verifies the leader's
// store.
func (b *bench) clusterOnce(agencies, bets, nodes int, killAfter time.Duration) (clusterRun, error) {
	tmp, err := os.MkdirTemp("", "tp0-cluster-")
	if err != nil {
		return clusterRun{}, err
	}
	defer os.RemoveAll(tmp)
	ports := make([]int, nodes)
	var lns []net.Listener
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return clusterRun{}, err
		}
		lns, ports[i] = append(lns, ln), ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	var parts, addrs []string
	for i, p := range ports {
		parts = append(parts, fmt.Sprintf("%d=127.0.0.1:%d", i+1, p))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	procs := make([]*proc, nodes)
	dbs := make([]string, nodes)
	for i := range procs {
		dbs[i] = filepath.Join(tmp, fmt.Sprintf("node-%d", i+1), "bets.db")
		os.MkdirAll(filepath.Dir(dbs[i]), 0o755)
		env := append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=" + strconv.Itoa(ports[i]), "AGENCIES=" + strconv.Itoa(agencies),
			"DB_PATH=" + dbs[i], "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m"}, b.extraEnv...)
		if nodes > 1 {
			env = append(env, "CLUSTER_NODES="+strings.Join(parts, ","), "CLUSTER_NODE_ID="+strconv.Itoa(i+1), "CLUSTER_INSECURE=true")
		}
		if procs[i], err = startProc(filepath.Join(b.bin, "server"), env, "action: listen | result: success"); err != nil {
			return clusterRun{}, err
		}
		defer procs[i].kill()
	}
	leader := func(not int) (int, bool) {
		for i, p := range procs {
			if i == not || nodes == 1 {
				continue
			}
			if m := reLeader.FindAllStringSubmatch(p.out.String(), -1); len(m) > 0 && m[len(m)-1][1] == "leader" {
				return i, true
			}
		}
		return 0, nodes == 1
	}
	deadline := time.Now().Add(30 * time.Second)
	lead, ok := leader(-1)
	for ; !ok && time.Now().Before(deadline); lead, ok = leader(-1) {
		time.Sleep(10 * time.Millisecond)
	}
	if !ok {
		return clusterRun{}, fmt.Errorf("no leader among %d nodes", nodes)
	}
	var run clusterRun
	var lastAck atomic.Int64
	done := make(chan error, 1)
	var res swarm.Result
	go func() {
		var err error
		res, err = swarm.Run(context.Background(), swarm.Config{Addr: strings.Join(addrs, ","), Agencies: agencies, Bets: bets, Window: 4,
			RetryTimeout: 10 * time.Minute, LastAck: &lastAck})
		done <- err
	}()
	if killAfter > 0 {
		time.Sleep(killAfter)
		procs[lead].kill()
		killed := time.Now()
		next, ok := leader(lead)
		for ; !ok && time.Since(killed) < time.Minute; next, ok = leader(lead) {
			time.Sleep(time.Millisecond)
		}
		run.elected = time.Since(killed)
	wait:
		for lastAck.Load() < killed.UnixNano() && time.Since(killed) < time.Minute {
			select {
			case err := <-done:
				done <- err
				break wait // the round ended before an ack after the kill
			case <-time.After(time.Millisecond):
			}
		}
		if lastAck.Load() >= killed.UnixNano() {
			run.firstAck = time.Unix(0, lastAck.Load()).Sub(killed)
		}
		lead = next
	}
	if err := <-done; err != nil {
		return run, err
	}
	run.elapsed = res.Elapsed
	for i, p := range procs {
		if killAfter > 0 && p.cmd.ProcessState != nil {
			continue // the killed one
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(); err != nil && i == lead {
			return run, fmt.Errorf("node %d: %w\n%s", i+1, err, p.tail())
		}
	}
	return run, verifySwarm(dbs[lead], agencies, bets, res)
}
