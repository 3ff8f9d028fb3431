// Command bench measures the whole flow end to end: the central and N agencies
// as processes on 127.0.0.1, from the central's start to the last agency's
// exit, verified on every run (stored count, winners per agency).
//
//	go run ./scripts/bench -mode flow  [-runs 5] [-data DIR]   # make bench
//	go run ./scripts/bench -mode scale                         # make bench-scale
//	go run ./scripts/bench -mode swarm [-agencies 1,100,1000,10000] [-bets 1000] [-kill-after 5s]  # make bench-swarm
//	go run ./scripts/bench -mode cluster [-shapes 5x0,10x20000] [-logstores wal,boltdb]  # make bench-cluster
//	go run ./scripts/bench -mode cluster -cgroups [-node-cores 0.25] [-agency-cores 0.75]  # make bench-cluster-quota
//	go run ./scripts/bench -mode catchup -agencies 10 -bets 200000 [-down 20s]  # make bench-catchup
//	go run ./scripts/bench -mode restart -agencies 10000 -bets 1000     # make bench-restart
//
// flow runs this system and a minimal reference pipeline (see ref.go) in the
// same run on the same data, and prints their figures and the ratio. scale
// runs generated data of 100k, 1M and 5M bets over 1, 10 and 100 agencies and
// prints a Markdown table (time, bets/s, peak memory, draw time, store size).
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
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
	mode := flag.String("mode", "flow", "flow, scale, swarm, cluster, catchup or restart")
	runs := flag.Int("runs", 5, "repetitions per configuration")
	bin := flag.String("bin", "bin", "folder with server and agency binaries")
	data := flag.String("data", "", "agency CSV folder (flow); default: the official dataset, else generated data")
	env := flag.String("env", "", "extra environment for the central and agencies, space-separated KEY=VALUE")
	withTLS := flag.Bool("tls", false, "flow: also run over mutual TLS, side by side with plaintext")
	withAdmin := flag.Bool("admin", false, "flow: also run with the admin listener on, scraped every second")
	swarmCounts := flag.String("agencies", "1,100,1000,10000", "swarm: agency counts, comma-separated")
	perAgency := flag.Int("bets", 1000, "swarm: bets per agency")
	window := flag.Int("window", 4, "swarm, cluster: batches in flight per agency")
	killAfter := flag.Duration("kill-after", 0, "swarm: kill -9 the central after this long and restart it (0: no kill)")
	hold := flag.Bool("hold", false, "swarm: measure what agencies waiting for the draw cost the central (the first count of -agencies)")
	replicas := flag.Int("replicas", 3, "cluster: the cluster's nodes, beside one central")
	shapes := flag.String("shapes", "5x0,10x20000,1000x0", "cluster: agencies x bets runs (bets 0: the official dataset's size)")
	logStores := flag.String("logstores", "wal,boltdb", "cluster: raft log stores to compare")
	failovers := flag.Int("failovers", 5, "cluster: failover runs (the median is printed)")
	withCgroups := flag.Bool("cgroups", false, "cluster: each central in a CPU cgroup of its own (-node-cores), the agencies in one (-agency-cores); needs root")
	nodeCores := flag.Float64("node-cores", 0.25, "cluster -cgroups: each central's CPU quota, in cores")
	agencyCores := flag.Float64("agency-cores", 0.75, "cluster -cgroups: the agencies' CPU quota, in cores")
	down := flag.Duration("down", 20*time.Second, "catchup: how long the follower is stopped")
	flag.Parse()
	b := &bench{window: *window, bin: *bin, extraEnv: strings.Fields(*env), tls: *withTLS, admin: *withAdmin}
	var err error
	switch *mode {
	case "flow":
		err = b.flow(*data, *runs)
	case "scale":
		err = b.scale(*runs)
	case "cluster":
		var sh []shape
		switch sh, err = parseShapes(*shapes); {
		case err != nil:
		case *withCgroups:
			err = b.quotaTable(sh, *replicas, strings.Split(*logStores, ",")[0], *nodeCores, *agencyCores, *runs)
		default:
			err = b.clusterTable(sh, *replicas, strings.Split(*logStores, ","), *failovers)
		}
	case "catchup":
		var n int
		if n, err = strconv.Atoi(*swarmCounts); err != nil || n < 1 {
			err = fmt.Errorf("-agencies: %q is not one count", *swarmCounts)
		} else {
			err = b.catchupTable(n, *perAgency, *runs, *down)
		}
	case "restart":
		var n int
		if n, err = strconv.Atoi(*swarmCounts); err != nil || n < 1 {
			err = fmt.Errorf("-agencies: %q is not one count", *swarmCounts)
		} else {
			err = b.restartTable(n, *perAgency)
		}
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
	window   int // cluster: batches in flight per agency
	bin      string
	extraEnv []string
	tls      bool
	admin    bool
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

func ms(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }
