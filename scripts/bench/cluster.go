package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
)

// shape is a run's agencies × bets (bets 0: the official dataset's size
// over the agencies).
type shape struct{ agencies, bets int }

// parseShapes reads "5x0,10x20000,1000x0".
func parseShapes(s string) ([]shape, error) {
	var out []shape
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(f), "x")
		na, err1 := strconv.Atoi(a)
		nb, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || na < 1 || nb < 0 {
			return nil, fmt.Errorf("-shapes: %q is not AGENCIESxBETS", f)
		}
		if nb == 0 {
			nb = (78697 + na - 1) / na
		}
		out = append(out, shape{na, nb})
	}
	return out, nil
}

// clusterTable runs the same swarm on one central and on a cluster of
// replicas (processes on this machine), side by side, for each log store,
// then measures failovers: kill -9 of the leader mid-run, to the new leader,
// to the first bet acknowledged after the kill.
func (b *bench) clusterTable(shapes []shape, replicas int, stores []string, failovers int) error {
	fmt.Printf("| agencies × bets | nodes | raft log | time | bets/s | vs one node | CPU, all nodes | in the run: nodes + agencies | commit p50 / p99 |\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, sh := range shapes {
		one, err := b.clusterOnce(sh, 1, "", 0, nil)
		if err != nil {
			return err
		}
		base := float64(sh.agencies*sh.bets) / one.elapsed.Seconds()
		fmt.Printf("| %d × %d | 1 | - | %s | %.0f | 1.00× | %s | %s | - |\n", sh.agencies, sh.bets, ms(one.elapsed), base, ms(one.cpu), one.inRun())
		for _, ls := range stores {
			res, err := b.clusterOnce(sh, replicas, ls, 0, nil)
			if err != nil {
				return err
			}
			rate := float64(sh.agencies*sh.bets) / res.elapsed.Seconds()
			fmt.Printf("| %d × %d | %d | %s | %s | %.0f | %.2f× | %s | %s | %s / %s |\n", sh.agencies, sh.bets, replicas, ls, ms(res.elapsed), rate, rate/base,
				ms(res.cpu), res.inRun(), ms(res.p50), ms(res.p99))
		}
	}
	if failovers == 0 {
		return nil
	}
	ls := stores[0]
	// A round of 2 M bets lasts several seconds at 300-400k bets/s: the
	// kill after 1 s falls in the middle of it.
	fo := shape{100, 20000}
	fmt.Printf("\n| failover (%d nodes, %s, %d agencies × %d bets, kill -9 of the leader after 1 s) | kill → new leader | kill → first ack |\n|---|---:|---:|\n", replicas, ls, fo.agencies, fo.bets)
	var elected, acked []time.Duration
	for run := 1; run <= failovers; run++ {
		res, err := b.clusterOnce(fo, replicas, ls, time.Second, nil)
		if err != nil {
			return err
		}
		first := "none: the round ended first"
		if res.firstAck > 0 {
			first = ms(res.firstAck)
			acked = append(acked, res.firstAck)
		}
		elected = append(elected, res.elected)
		fmt.Printf("| run %d | %s | %s |\n", run, ms(res.elected), first)
	}
	fmt.Printf("| median of %d | %s | %s |\n", failovers, ms(median(elected)), ms(median(acked)))
	return nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

type clusterRun struct {
	elapsed, elected, firstAck time.Duration
	cpu                        time.Duration   // every node's user+system time
	runCPU, swarmCPU           time.Duration   // the nodes' and the agencies' (this process's) while the swarm ran
	p50, p99                   time.Duration   // the leader's commit latency (tp0_cluster_commit_seconds)
	perNode                    []time.Duration // each node's CPU while the swarm ran
	lead                       int             // the leader at the end (no kill: throughout)
	throttled                  int             // periods the leader's cgroup was held at its quota
}

// inRun is the CPU the nodes and the agencies used while the swarm ran,
// and how many of the machine's cores that is.
func (r clusterRun) inRun() string {
	return fmt.Sprintf("%s + %s (%.1f cores)", ms(r.runCPU), ms(r.swarmCPU), (r.runCPU+r.swarmCPU).Seconds()/r.elapsed.Seconds())
}

var (
	reLeader = regexp.MustCompile(`action: cluster_role \| result: success \| nodo: \d+ \| rol: (\w+)`)
	reAdmin  = regexp.MustCompile(`action: admin_listen \| result: success \| direccion: (\S+)`)
)

// nodeSet is a run's central processes: one central (no cluster), or
// the nodes of a cluster, each on its own folder, optionally each in a CPU
// cgroup of its own.
type nodeSet struct {
	b            *bench
	tmp          string
	addrs, parts []string
	ports        []int
	dbs          []string
	procs        []*proc
	env          [][]string
	cg           *cgroups // nil: none
}

// startNodes starts n centrals (1: no cluster) for agencies, whose raft log
// is logStore, and waits for a leader.
func (b *bench) startNodes(n, agencies int, logStore string, cg *cgroups) (*nodeSet, error) {
	tmp, err := os.MkdirTemp("", "tp0-cluster-")
	if err != nil {
		return nil, err
	}
	ns := &nodeSet{b: b, tmp: tmp, cg: cg, procs: make([]*proc, n), dbs: make([]string, n), env: make([][]string, n)}
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ns.close()
			return nil, err
		}
		lns, ns.ports = append(lns, ln), append(ns.ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	for i, p := range ns.ports {
		ns.parts = append(ns.parts, fmt.Sprintf("%d=127.0.0.1:%d", i+1, p))
		ns.addrs = append(ns.addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	for i := range ns.procs {
		ns.dbs[i] = filepath.Join(tmp, fmt.Sprintf("node-%d", i+1), "bets.db")
		os.MkdirAll(filepath.Dir(ns.dbs[i]), 0o755)
		ns.env[i] = append([]string{"SERVER_IP=127.0.0.1", "SERVER_PORT=" + strconv.Itoa(ns.ports[i]), "AGENCIES=" + strconv.Itoa(agencies),
			"DB_PATH=" + ns.dbs[i], "SERVER_LISTEN_BACKLOG=4096", "IDLE_TIMEOUT=5m", "ADMIN_ADDR=127.0.0.1:0"}, nodeEnv(b.extraEnv, i+1)...)
		if n > 1 {
			ns.env[i] = append(ns.env[i], "CLUSTER_NODES="+strings.Join(ns.parts, ","), "CLUSTER_NODE_ID="+strconv.Itoa(i+1), "CLUSTER_INSECURE=true",
				"CLUSTER_LOG_STORE="+logStore)
		}
		if err := ns.start(i); err != nil {
			ns.close()
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, ok := ns.leader(-1); !ok; _, ok = ns.leader(-1) {
		if time.Now().After(deadline) {
			ns.close()
			return nil, fmt.Errorf("no leader among %d nodes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ns, nil
}

// start starts node i on its folder (in its cgroup, with one) and waits
// until it listens.
func (ns *nodeSet) start(i int) error {
	path, args := filepath.Join(ns.b.bin, "server"), []string(nil)
	if ns.cg != nil {
		path, args = ns.cg.wrap(nodeGroup(i), path)
	}
	p, err := startProc(path, ns.env[i], "action: listen | result: success", args...)
	if err != nil {
		return err
	}
	ns.procs[i] = p
	return nil
}

func nodeGroup(i int) string { return fmt.Sprintf("node-%d", i+1) }

// leader returns the node whose last role line says it leads (not not);
// one central always leads.
func (ns *nodeSet) leader(not int) (int, bool) {
	if len(ns.procs) == 1 {
		return 0, true
	}
	for i, p := range ns.procs {
		if i == not || p == nil {
			continue
		}
		if m := reLeader.FindAllStringSubmatch(p.out.String(), -1); len(m) > 0 && m[len(m)-1][1] == "leader" {
			return i, true
		}
	}
	return 0, false
}

// cpu is every running node's user+system time so far, each.
func (ns *nodeSet) cpu() []time.Duration {
	out := make([]time.Duration, len(ns.procs))
	for i, p := range ns.procs {
		if p != nil {
			out[i] = p.cpuTime()
		}
	}
	return out
}

// applied reads node i's tp0_cluster_applied_index from its /metrics.
func (ns *nodeSet) applied(i int) (uint64, bool) {
	m := reAdmin.FindStringSubmatch(ns.procs[i].out.String())
	if m == nil {
		return 0, false
	}
	body, err := fetch("http://" + m[1] + "/metrics")
	if err != nil {
		return 0, false
	}
	mm := reApplied.FindStringSubmatch(body)
	if mm == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(mm[1], 64)
	return uint64(v), err == nil
}

var reApplied = regexp.MustCompile(`(?m)^tp0_cluster_applied_index\{[^}]*\} (\S+)$`)

// stop stops node i cleanly (SIGTERM) and returns its exit error.
func (ns *nodeSet) stop(i int) error {
	p := ns.procs[i]
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.wait()
	ns.procs[i] = nil
	if err != nil {
		return fmt.Errorf("node %d: %w\n%s", i+1, err, p.tail())
	}
	return nil
}

// close kills what still runs and removes the folders.
func (ns *nodeSet) close() {
	for _, p := range ns.procs {
		if p != nil && p.cmd.ProcessState == nil {
			p.kill()
		}
	}
	os.RemoveAll(ns.tmp)
}

// clusterOnce runs sh against nodes centrals (1: no cluster) whose raft log
// is logStore, killing the leader after killAfter (0: no kill), and
// verifies the leader's store. With cg, each node runs in its own cgroup
// and the agencies (this process) in theirs.
func (b *bench) clusterOnce(sh shape, nodes int, logStore string, killAfter time.Duration, cg *cgroups) (clusterRun, error) {
	ns, err := b.startNodes(nodes, sh.agencies, logStore, cg)
	if err != nil {
		return clusterRun{}, err
	}
	defer ns.close()
	lead, _ := ns.leader(-1)
	var run clusterRun
	var lastAck atomic.Int64
	sum := func(d []time.Duration) (t time.Duration) {
		for _, x := range d {
			t += x
		}
		return t
	}
	if cg != nil {
		if err := cg.enter(agencyGroup, os.Getpid()); err != nil {
			return run, err
		}
		defer cg.leave(os.Getpid())
	}
	nodes0, self0 := ns.cpu(), selfCPU()
	done := make(chan error, 1)
	var res swarm.Result
	go func() {
		var err error
		res, err = swarm.Run(context.Background(), swarm.Config{Addr: strings.Join(ns.addrs, ","), Agencies: sh.agencies, Bets: sh.bets, Window: b.window,
			RetryTimeout: 10 * time.Minute, LastAck: &lastAck})
		done <- err
	}()
	if killAfter > 0 {
		time.Sleep(killAfter)
		ns.procs[lead].kill()
		killed := time.Now()
		next, ok := ns.leader(lead)
		for ; !ok && time.Since(killed) < time.Minute; next, ok = ns.leader(lead) {
			time.Sleep(time.Millisecond)
		}
		run.elected = time.Since(killed)
		// Acks the killed leader had already sent can still arrive a few ms
		// after the kill: the first ack counted is one received once the new
		// leader is known (a little late, if the new leader acked before its
		// role line was read: never early).
		elected := time.Now()
	wait:
		for lastAck.Load() < elected.UnixNano() && time.Since(killed) < time.Minute {
			select {
			case err := <-done:
				done <- err
				break wait // the round ended before an ack after the kill
			case <-time.After(time.Millisecond):
			}
		}
		if lastAck.Load() >= elected.UnixNano() {
			run.firstAck = time.Unix(0, lastAck.Load()).Sub(killed)
		}
		lead = next
	}
	if err := <-done; err != nil {
		return run, err
	}
	run.elapsed = res.Elapsed
	if killAfter == 0 {
		after := ns.cpu()
		run.perNode = make([]time.Duration, len(after))
		for i := range after {
			run.perNode[i] = after[i] - nodes0[i]
		}
		run.runCPU, run.swarmCPU = sum(after)-sum(nodes0), selfCPU()-self0
		run.lead = lead
	}
	if nodes > 1 {
		run.p50, run.p99 = commitLatency(ns.procs[lead])
	}
	for i, p := range ns.procs {
		if killAfter > 0 && p.cmd.ProcessState != nil {
			continue // the killed one
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.wait(); err != nil && i == lead {
			return run, fmt.Errorf("node %d: %w\n%s", i+1, err, p.tail())
		}
		run.cpu += p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	}
	return run, verifySwarm(ns.dbs[lead], sh.agencies, sh.bets, res)
}

// nodeEnv returns env for node id: "{node}" in a value becomes its id, so
// -env CPU_PROFILE=/tmp/cpu-{node}.prof profiles each node on its own.
func nodeEnv(env []string, id int) []string {
	out := make([]string, len(env))
	for i, kv := range env {
		out[i] = strings.ReplaceAll(kv, "{node}", strconv.Itoa(id))
	}
	return out
}

// commitLatency reads the leader's commit latency histogram from its
// /metrics and returns its 50th and 99th percentiles (bucket bounds).
func commitLatency(p *proc) (p50, p99 time.Duration) {
	m := reAdmin.FindStringSubmatch(p.out.String())
	if m == nil {
		return 0, 0
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	type bucket struct {
		le    float64
		count float64
	}
	var buckets []bucket
	sc := bufio.NewScanner(resp.Body)
	re := regexp.MustCompile(`^tp0_cluster_commit_seconds_bucket\{(?:node="\d+",)?le="([^"]+)"(?:,node="\d+")?\} (\S+)`)
	for sc.Scan() {
		if mm := re.FindStringSubmatch(sc.Text()); mm != nil {
			le, _ := strconv.ParseFloat(mm[1], 64)
			if mm[1] == "+Inf" {
				le = math.Inf(1)
			}
			c, _ := strconv.ParseFloat(mm[2], 64)
			buckets = append(buckets, bucket{le, c})
		}
	}
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return 0, 0
	}
	slices.SortFunc(buckets, func(a, b bucket) int { return int(math.Copysign(1, a.le-b.le)) })
	total := buckets[len(buckets)-1].count
	at := func(q float64) time.Duration {
		for _, b := range buckets {
			if b.count >= q*total && !math.IsInf(b.le, 1) {
				return time.Duration(b.le * float64(time.Second))
			}
		}
		return 0
	}
	return at(0.5), at(0.99)
}
