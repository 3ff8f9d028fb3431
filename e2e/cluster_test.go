package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

// freePorts returns n ports free on 127.0.0.1 a moment ago (a cluster's
// nodes must know each other's address before they start).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// processCluster is three central processes of one cluster.
type processCluster struct {
	t      *testing.T
	nodes  string // CLUSTER_NODES
	addrs  []string
	dbs    []string
	procs  []*central
	admin  [3]string // each node's admin listener, for its /api/status
	agency int
}

func startProcessCluster(t *testing.T, agencies int) *processCluster {
	t.Helper()
	pc := &processCluster{t: t, agency: agencies}
	var parts []string
	for i, port := range freePorts(t, 3) {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		pc.addrs = append(pc.addrs, addr)
		parts = append(parts, fmt.Sprintf("%d=%s", i+1, addr))
		pc.dbs = append(pc.dbs, filepath.Join(t.TempDir(), "bets.db"))
	}
	pc.nodes = strings.Join(parts, ",")
	pc.procs = make([]*central, 3)
	for i := range pc.procs {
		pc.start(i)
	}
	return pc
}

func (pc *processCluster) start(i int) {
	pc.t.Helper()
	port := pc.addrs[i][strings.LastIndex(pc.addrs[i], ":")+1:]
	p := start(pc.t, "server", pc.t.TempDir(), "SERVER_IP=127.0.0.1", "SERVER_PORT="+port, fmt.Sprintf("AGENCIES=%d", pc.agency),
		"DB_PATH="+pc.dbs[i], "CLUSTER_NODES="+pc.nodes, fmt.Sprintf("CLUSTER_NODE_ID=%d", i+1), "IDLE_TIMEOUT=5s", "ADMIN_ADDR=127.0.0.1:0")
	line := p.waitLine(`action: admin_listen \| result: success \| address: `, 20*time.Second)
	pc.admin[i] = "http://" + line[strings.LastIndex(line, " ")+1:]
	listenAddr(p)
	pc.procs[i] = &central{proc: p, addr: pc.addrs[i], dbPath: pc.dbs[i]}
}

// applied reads node i's applied index from its /api/status.
func (pc *processCluster) applied(i int) (uint64, bool) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(pc.admin[i] + "/api/status")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var st struct {
		Cluster *struct {
			Applied uint64 `json:"applied_index"`
		} `json:"cluster"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Cluster == nil {
		return 0, false
	}
	return st.Cluster.Applied, true
}

// waitApplied waits until the three replicas applied the same last entry.
func (pc *processCluster) waitApplied() {
	pc.t.Helper()
	var got [3]uint64
	if !poll(time.Minute, func() bool {
		for i := range pc.procs {
			var ok bool
			if got[i], ok = pc.applied(i); !ok {
				return false
			}
		}
		return got[0] > 0 && got[0] == got[1] && got[1] == got[2]
	}) {
		pc.t.Fatalf("the replicas did not converge: applied %v", got)
	}
}

// leader waits for a node that logged it leads, and returns its index.
func (pc *processCluster) leader(not int) int {
	pc.t.Helper()
	var found = -1
	if !poll(30*time.Second, func() bool {
		for i, c := range pc.procs {
			if i == not || c == nil {
				continue
			}
			roles := c.grep(`action: cluster_role \| result: success \| node: \d+ \| role: `)
			if len(roles) > 0 && strings.Contains(roles[len(roles)-1], "role: leader") {
				found = i
				return true
			}
		}
		return false
	}) {
		pc.t.Fatal("no leader within 30 s")
	}
	return found
}

// Three central processes lose their leader to kill -9 mid-round: the
// agencies go on with the new leader, the round finishes exactly once, and
// every replica, the killed one restarted and caught up included, holds the
// same store (bets.csv rows, counts, draw and winners).
func TestCluster_KillLeaderMidRound(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	data := bigData
	pc := startProcessCluster(t, 2)
	lead := pc.leader(-1)
	addrs := strings.Join(pc.addrs, ",")
	procs := []*proc{nil}
	for id := 1; id <= 2; id++ {
		procs = append(procs, startAgency(t, pc.procs[lead], id, data, "CLI_SERVER_ADDRESS="+addrs, "CLI_BATCH_WINDOW=2"))
	}
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	procs[1].waitLine(`action: progreso \| result: in_progress .*porcentaje: 10`, 2*time.Minute)
	pc.procs[lead].cmd.Process.Kill()
	pc.procs[lead].wait(time.Minute)
	next := pc.leader(lead)
	if next == lead {
		t.Fatal("the killed node leads")
	}
	want := expectedWinners(t, data, 2)
	waitAgencies(t, procs, want)
	pc.procs[next].waitLine(`action: sorteo \| result: success`, time.Minute)
	pc.start(lead) // back from its own files: it catches up from the leader
	pc.waitApplied()
	for _, c := range pc.procs {
		c.signal(syscall.SIGTERM)
		if code := c.wait(time.Minute); code != 0 {
			t.Fatalf("node exited %d:\n%s", code, c.output())
		}
	}
	var exports [3]bytes.Buffer
	var draws [3]store.Round
	for i, db := range pc.dbs {
		s, err := store.Open(db, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		if err := s.Export(&exports[i]); err != nil {
			t.Fatal(err)
		}
		if draws[i], err = s.Round(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	for i := 1; i < 3; i++ {
		if !bytes.Equal(exports[i].Bytes(), exports[0].Bytes()) || !draws[i].DrawTime.Equal(draws[0].DrawTime) ||
			fmt.Sprint(draws[i].Winners) != fmt.Sprint(draws[0].Winners) {
			t.Fatalf("replica %d differs from replica 1 (%d vs %d bytes of bets.csv, draw %s vs %s)", i+1,
				exports[i].Len(), exports[0].Len(), draws[i].DrawTime, draws[0].DrawTime)
		}
	}
	rep := verifyStore(t, pc.dbs[0], data, 2)
	if rep.total != len(fileBets(t, data, 1))+len(fileBets(t, data, 2)) {
		t.Fatalf("stored %d bets", rep.total)
	}
	for a := 1; a <= 2; a++ {
		if len(draws[0].Winners[a]) != want[a] {
			t.Fatalf("agency %d: %d winners stored, want %d", a, len(draws[0].Winners[a]), want[a])
		}
	}
}
