package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
)

// quotaTable runs each shape against one central and against replicas
// nodes, every central in a CPU cgroup of its own with nodeCores of a core
// (as on a machine of its own) and the agencies in one with agencyCores,
// runs times each, interleaved; it prints the medians, the ratio, and each
// node's CPU per stored bet beside one central's: what replication costs
// each node, whatever the machine.
func (b *bench) quotaTable(shapes []shape, replicas int, logStore string, nodeCores, agencyCores float64, runs int) error {
	cg, err := newCgroups()
	if err != nil {
		return err
	}
	defer cg.close()
	for i := range replicas {
		if err := cg.set(nodeGroup(i), nodeCores); err != nil {
			return err
		}
	}
	if err := cg.set(agencyGroup, agencyCores); err != nil {
		return err
	}
	fmt.Printf("each central in a CPU cgroup of %.2f of a core, the agencies in one of %.2f; %d runs each, interleaved, medians\n\n", nodeCores, agencyCores, runs)
	fmt.Printf("| agencies × bets | nodes | time | bets/s | vs one node | CPU per stored bet, each node (leader first) | throttled periods, leader |\n|---|---:|---:|---:|---:|---|---:|\n")
	for _, sh := range shapes {
		var one, many []clusterRun
		for range runs {
			t0 := cg.throttled(nodeGroup(0))
			r, err := b.clusterOnce(sh, 1, "", 0, cg)
			if err != nil {
				return err
			}
			r.throttled = cg.throttled(nodeGroup(0)) - t0
			one = append(one, r)
			before := make([]int, replicas)
			for i := range before {
				before[i] = cg.throttled(nodeGroup(i))
			}
			if r, err = b.clusterOnce(sh, replicas, logStore, 0, cg); err != nil {
				return err
			}
			r.throttled = cg.throttled(nodeGroup(r.lead)) - before[r.lead]
			many = append(many, r)
		}
		total := float64(sh.agencies * sh.bets)
		m1, mn := medianRun(one), medianRun(many)
		base := total / m1.elapsed.Seconds()
		fmt.Printf("| %d × %d | 1 | %s | %.0f | 1.00× | %s | %d |\n", sh.agencies, sh.bets, ms(m1.elapsed), base, perBet(m1, total), m1.throttled)
		rate := total / mn.elapsed.Seconds()
		fmt.Printf("| %d × %d | %d | %s | %.0f | %.2f× | %s | %d |\n", sh.agencies, sh.bets, replicas, ms(mn.elapsed), rate, rate/base, perBet(mn, total), mn.throttled)
	}
	return nil
}

// medianRun is the run of median time.
func medianRun(runs []clusterRun) clusterRun {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b clusterRun) int { return int(a.elapsed - b.elapsed) })
	return s[len(s)/2]
}

// perBet is each node's CPU in the run per stored bet, the leader first.
func perBet(r clusterRun, bets float64) string {
	order := []int{r.lead}
	for i := range r.perNode {
		if i != r.lead {
			order = append(order, i)
		}
	}
	var parts []string
	for _, i := range order {
		parts = append(parts, fmt.Sprintf("%.2f µs", float64(r.perNode[i].Microseconds())/bets))
	}
	return strings.Join(parts, " / ")
}

// catchupTable stops a follower (SIGTERM) 2 s into a round of agencies ×
// bets on three nodes, keeps it down for down, starts it again on its
// folders, and times exec → its applied index at the leader's (read just
// before its own), runs times; it prints each run and the median.
func (b *bench) catchupTable(agencies, bets, runs int, down time.Duration) error {
	fmt.Printf("| run | follower | behind at its start (entries) | round still running at its start | exec → caught up |\n|---|---:|---:|---|---:|\n")
	var took []time.Duration
	for run := 1; run <= runs; run++ {
		d, err := b.catchupOnce(run, agencies, bets, down)
		if err != nil {
			return err
		}
		took = append(took, d)
	}
	fmt.Printf("| median of %d | | | | %s |\n", runs, ms(median(took)))
	return nil
}

func (b *bench) catchupOnce(run, agencies, bets int, down time.Duration) (time.Duration, error) {
	ns, err := b.startNodes(3, agencies, "wal", nil)
	if err != nil {
		return 0, err
	}
	defer ns.close()
	lead, _ := ns.leader(-1)
	done := make(chan error, 1)
	var res swarm.Result
	go func() {
		var err error
		res, err = swarm.Run(context.Background(), swarm.Config{Addr: strings.Join(ns.addrs, ","), Agencies: agencies, Bets: bets, Window: b.window, RetryTimeout: 10 * time.Minute})
		done <- err
	}()
	time.Sleep(2 * time.Second)
	f := (lead + 1) % 3
	if err := ns.stop(f); err != nil {
		return 0, err
	}
	time.Sleep(down)
	running := "yes"
	select {
	case err := <-done:
		done <- err
		running = "no"
	default:
	}
	t0 := time.Now()
	if err := ns.start(f); err != nil {
		return 0, err
	}
	var behind int64 = -1
	var took time.Duration
	for deadline := t0.Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("run %d: node %d did not catch up within 5 minutes", run, f+1)
		}
		la, ok1 := ns.applied(lead)
		fa, ok2 := ns.applied(f)
		if !ok1 || !ok2 {
			continue
		}
		if behind < 0 {
			behind = int64(la) - int64(fa)
		}
		if fa >= la {
			took = time.Since(t0)
			break
		}
	}
	if err := <-done; err != nil {
		return 0, err
	}
	fmt.Printf("| run %d | %d | %d | %s | %s |\n", run, f+1, behind, running, ms(took))
	for i := range ns.procs {
		if err := ns.stop(i); err != nil {
			return 0, err
		}
	}
	return took, verifySwarm(ns.dbs[lead], agencies, bets, res)
}
