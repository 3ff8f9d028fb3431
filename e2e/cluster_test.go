package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/swarm"
	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/protocol"
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

// processCluster is central processes of one cluster: node i+1 is index i.
type processCluster struct {
	t      *testing.T
	nodes  string // CLUSTER_NODES of the first start
	addrs  []string
	dbs    []string
	procs  []*central
	admin  []string // each node's admin listener, for its /api/status
	agency int
	tlsDir string // with mutual TLS: the CA, central-N and agency-N pairs
	// gone are the nodes removed from the cluster; join the nodes added to
	// it (they start with CLUSTER_JOIN=true); env, more of a node's environment.
	gone, join map[int]bool
	env        map[int][]string
	// hist, when set, is where runAgencies' agencies record their histories.
	hist histories
	// bin, when set for a node, is the server binary it runs (another
	// build's); else the one this test run built.
	bin map[int]string
	// lab, when set, holds every node and agency in a network namespace of
	// its own (netns_test.go); nil: all on this host's loopback.
	lab *netLab
}

// adminToken is every test node's ADMIN_TOKEN.
const adminToken = "e2e-admin-token"

// clusterPKI writes a CA, replicas 1..4's pairs and agencies 1..2's in a dir.
func clusterPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	spec := pki.Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	ca, err := pki.NewCA("test CA", spec)
	if err != nil {
		t.Fatal(err)
	}
	pairs := map[string]pki.Pair{"ca": ca}
	for k := 1; k <= 4; k++ {
		if pairs[fmt.Sprintf("central-%d", k)], err = pki.NewReplica(ca, k, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, spec); err != nil {
			t.Fatal(err)
		}
	}
	for a := 1; a <= 2; a++ {
		if pairs[fmt.Sprintf("agency-%d", a)], err = pki.NewAgency(ca, a, spec); err != nil {
			t.Fatal(err)
		}
	}
	for name, p := range pairs {
		if err := p.Write(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// clusterTest marks a test of central processes: it runs beside the
// others, and not in -short mode.
func clusterTest(t *testing.T) {
	t.Helper()
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
}

// startProcessCluster starts three nodes for agencies agencies (over TLS
// when tlsDir holds their certificates).
func startProcessCluster(t *testing.T, agencies int, tlsDir string) *processCluster {
	t.Helper()
	pc := newProcessCluster(t, agencies, tlsDir)
	for i := range pc.procs {
		pc.start(i)
	}
	return pc
}

// newProcessCluster lays out three nodes without starting them.
func newProcessCluster(t *testing.T, agencies int, tlsDir string) *processCluster {
	t.Helper()
	return newProcessClusterOf(t, 3, agencies, tlsDir)
}

// newProcessClusterOf lays out n nodes, bootstrapped together, without
// starting them.
func newProcessClusterOf(t *testing.T, n, agencies int, tlsDir string) *processCluster {
	t.Helper()
	pc := &processCluster{t: t, agency: agencies, tlsDir: tlsDir, gone: map[int]bool{}, join: map[int]bool{}, env: map[int][]string{}}
	var parts []string
	for i, port := range freePorts(t, n) {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		pc.addrs = append(pc.addrs, addr)
		parts = append(parts, fmt.Sprintf("%d=%s", i+1, addr))
		pc.dbs = append(pc.dbs, filepath.Join(t.TempDir(), "bets.db"))
	}
	pc.nodes = strings.Join(parts, ",")
	pc.procs = make([]*central, n)
	pc.admin = make([]string, n)
	return pc
}

// addNode lays out a new node at a new port that joins the cluster, and
// returns its index (not started).
func (pc *processCluster) addNode() int {
	pc.t.Helper()
	i := len(pc.addrs)
	pc.addrs = append(pc.addrs, fmt.Sprintf("127.0.0.1:%d", freePorts(pc.t, 1)[0]))
	pc.dbs = append(pc.dbs, filepath.Join(pc.t.TempDir(), "bets.db"))
	pc.procs = append(pc.procs, nil)
	pc.admin = append(pc.admin, "")
	pc.join[i] = true
	return i
}

// live are the indexes of the nodes in the cluster.
func (pc *processCluster) live() []int {
	var out []int
	for i := range pc.addrs {
		if !pc.gone[i] && pc.procs[i] != nil {
			out = append(out, i)
		}
	}
	return out
}

// nodesFor is CLUSTER_NODES for node i: the first start's, or, for a node
// that joins, the cluster's live nodes and itself.
func (pc *processCluster) nodesFor(i int) string {
	if !pc.join[i] {
		return pc.nodes
	}
	var parts []string
	for k, a := range pc.addrs {
		if !pc.gone[k] && (pc.procs[k] != nil || k == i) {
			parts = append(parts, fmt.Sprintf("%d=%s", k+1, a))
		}
	}
	return strings.Join(parts, ",")
}

// command runs the server binary's command against node i's admin listener.
func (pc *processCluster) command(i int, args ...string) (string, error) {
	args = append(append(pc.wrap(i), filepath.Join(binDir, "server")), append(args, "--admin", pc.admin[i], "--token", adminToken)...)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func (pc *processCluster) start(i int) {
	pc.t.Helper()
	p := pc.launch(i)
	line := p.waitLine(`action: admin_listen \| result: success \| direccion: `, 20*time.Second)
	pc.admin[i] = "http://" + line[strings.LastIndex(line, " ")+1:]
	listenAddr(p)
	pc.procs[i] = &central{proc: p, addr: pc.addrs[i], dbPath: pc.dbs[i]}
}

// launch starts node i's process and returns it without waiting for it to
// listen (a node that is refused at start never does).
func (pc *processCluster) launch(i int) *proc {
	pc.t.Helper()
	host, port, _ := net.SplitHostPort(pc.addrs[i])
	env := []string{"SERVER_IP=" + host, "SERVER_PORT=" + port, fmt.Sprintf("AGENCIES=%d", pc.agency),
		"DB_PATH=" + pc.dbs[i], "CLUSTER_NODES=" + pc.nodesFor(i), fmt.Sprintf("CLUSTER_NODE_ID=%d", i+1), "IDLE_TIMEOUT=5s",
		"ADMIN_ADDR=127.0.0.1:0", "ADMIN_TOKEN=" + adminToken, fmt.Sprintf("CLUSTER_JOIN=%t", pc.join[i])}
	if pc.tlsDir != "" {
		base := filepath.Join(pc.tlsDir, fmt.Sprintf("central-%d", i+1))
		env = append(env, "TLS_CERT="+base+".crt", "TLS_KEY="+base+".key", "TLS_CLIENT_CA="+filepath.Join(pc.tlsDir, "ca.crt"))
	} else {
		env = append(env, "CLUSTER_INSECURE=true")
	}
	name := "server"
	if b := pc.bin[i]; b != "" {
		name = b
	}
	return startIn(pc.t, pc.wrap(i), name, pc.t.TempDir(), append(env, pc.env[i]...)...)
}

// get GETs path from node i's admin listener (in its network namespace
// when the cluster runs in a netLab).
func (pc *processCluster) get(i int, path string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, pc.admin[i]+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	client := &http.Client{Timeout: timeout}
	if pc.lab != nil {
		client.Transport = &http.Transport{DialContext: pc.lab.dialer(pc.member(i)), DisableKeepAlives: true}
	}
	return client.Do(req)
}

// applied reads node i's applied index from its /api/status.
func (pc *processCluster) applied(i int) (uint64, bool) {
	resp, err := pc.get(i, "/api/status", 5*time.Second)
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

// waitApplied waits until the live replicas applied the same last entry.
func (pc *processCluster) waitApplied() {
	pc.t.Helper()
	got := map[int]uint64{}
	if !poll(time.Minute, func() bool {
		var want uint64
		for _, i := range pc.live() {
			a, ok := pc.applied(i)
			if got[i] = a; !ok || a == 0 || want != 0 && a != want {
				return false
			}
			want = a
		}
		return true
	}) {
		pc.t.Fatalf("the replicas did not converge: applied %v (by index)", got)
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
			roles := c.grep(`action: cluster_role \| result: success \| nodo: \d+ \| rol: `)
			if len(roles) > 0 && strings.Contains(roles[len(roles)-1], "rol: leader") {
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
// same store (bets.csv rows, counts, draw and winners). In plaintext and
// over mutual TLS (replicas with their own certificates).
func TestCluster_KillLeaderMidRound(t *testing.T) {
	clusterTest(t)
	// Where the leader dies: while it ingests; right after the last finish
	// (the draw is in that entry); while it delivers winners.
	points := []struct{ name, line string }{
		{"Ingest", `action: apuesta_recibida \| result: success`},
		{"AfterTheLastFinish", `action: agencia_finalizada \| result: success .*finalizadas: 2 `},
		{"DuringDelivery", `action: consulta_ganadores \| result: success`},
	}
	for _, p := range points {
		t.Run("Plaintext/"+p.name, func(t *testing.T) { t.Parallel(); killLeaderAt(t, "", p.line) })
	}
	t.Run("MutualTLS/Ingest", func(t *testing.T) { t.Parallel(); killLeaderAt(t, clusterPKI(t), points[0].line) })
}

// A leader paused (SIGSTOP) mid-round loses its lease: the others elect a
// new one and the agencies finish with it; resumed, the old leader steps
// down, acknowledges nothing but what was committed before its pause, and
// catches up to the same store.
func TestCluster_PausedLeader(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	lead := pc.leader(-1)
	h := newHistories(t)
	procs := []*proc{nil}
	for id := 1; id <= 2; id++ {
		procs = append(procs, startAgency(t, pc.procs[lead], id, genData, "CLI_SERVER_ADDRESS="+strings.Join(pc.addrs, ","),
			"CLI_BATCH_WINDOW=1", "CLI_BATCH_MAXAMOUNT=40", "CLI_SERVER_TIMEOUT=2s", h.env(id)))
	}
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	pc.procs[lead].signal(syscall.SIGSTOP)
	next := pc.leader(lead)
	waitAgencies(t, procs, expectedWinners(t, genData, 2))
	before := len(pc.procs[lead].grep(`action: apuesta_recibida \| result: success`))
	pc.procs[lead].signal(syscall.SIGCONT)
	pc.procs[lead].waitLine(`action: cluster_role \| result: success .*rol: follower`, time.Minute)
	pc.procs[next].waitLine(`action: sorteo \| result: success`, time.Minute)
	pc.waitApplied()
	// A batch whose entry reached both followers before the pause is
	// committed in the old term, and the resumed leader may still answer
	// it (true, and to an agency that has moved on): at most one per
	// agency, its window. Anything more would be a batch it took after
	// the resume; what every agency was told is checked by its history.
	if after := len(pc.procs[lead].grep(`action: apuesta_recibida \| result: success`)); after-before > len(procs)-1 {
		t.Fatalf("the paused leader acknowledged %d batches after it was resumed (at most %d were in flight)", after-before, len(procs)-1)
	}
	pc.compareStores(t, genData)
	h.check(t, 2, genData)
}

// killLeaderAt kills the leader (-9) once it logs a line matching at.
func killLeaderAt(t *testing.T, tlsDir, at string) {
	data := genData
	pc := startProcessCluster(t, 2, tlsDir)
	lead := pc.leader(-1)
	var addrs []string
	for _, a := range pc.addrs {
		if tlsDir != "" {
			a = "localhost" + a[strings.LastIndex(a, ":"):] // the name in the replicas' certificates
		}
		addrs = append(addrs, a)
	}
	h := newHistories(t)
	procs := []*proc{nil}
	for id := 1; id <= 2; id++ {
		env := []string{"CLI_SERVER_ADDRESS=" + strings.Join(addrs, ","), "CLI_BATCH_WINDOW=1", "CLI_BATCH_MAXAMOUNT=40", h.env(id)}
		if tlsDir != "" {
			f := func(n string) string { return filepath.Join(tlsDir, n) }
			env = append(env, "CLI_TLS_CA="+f("ca.crt"), fmt.Sprintf("CLI_TLS_CERT=%s/agency-%d.crt", tlsDir, id), fmt.Sprintf("CLI_TLS_KEY=%s/agency-%d.key", tlsDir, id))
		}
		procs = append(procs, startAgency(t, pc.procs[lead], id, data, env...))
	}
	pc.procs[lead].waitLine(at, time.Minute)
	pc.procs[lead].cmd.Process.Kill()
	pc.procs[lead].wait(time.Minute)
	next := pc.leader(lead)
	if next == lead {
		t.Fatal("the killed node leads")
	}
	want := expectedWinners(t, data, 2)
	waitAgencies(t, procs, want)
	pc.start(lead) // back from its own files: it catches up from the leader
	pc.waitApplied()
	pc.compareStores(t, data)
	h.check(t, 2, data)
}

// Over TLS, an agency's certificate cannot join the cluster and a
// replica's cannot speak as an agency.
func TestCluster_IdentitiesOverTLS(t *testing.T) {
	t.Parallel()
	dir := clusterPKI(t)
	port := freePorts(t, 1)[0]
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", fmt.Sprintf("SERVER_PORT=%d", port), "AGENCIES=1",
		"DB_PATH="+filepath.Join(t.TempDir(), "bets.db"), "CLUSTER_NODES=1="+addr, "CLUSTER_NODE_ID=1",
		"TLS_CERT="+filepath.Join(dir, "central-1.crt"), "TLS_KEY="+filepath.Join(dir, "central-1.key"), "TLS_CLIENT_CA="+filepath.Join(dir, "ca.crt"))
	listenAddr(c)
	c.waitLine(`action: cluster_role \| result: success \| nodo: 1 \| rol: leader`, 30*time.Second)
	dialAs := func(base string) *tls.Conn {
		pair, pool, err := pki.Load(filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key"), filepath.Join(dir, "ca.crt"), nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// An agency's certificate, speaking as a replica: refused.
	ag := dialAs("agency-1")
	ag.Write([]byte{protocol.ReplicaMarker})
	ag.SetReadDeadline(time.Now().Add(10 * time.Second))
	if m, err := protocol.NewReader(ag, 0).Next(); err == nil {
		if e, ok := m.(*protocol.Error); !ok || e.Code != protocol.CodeMalformed {
			t.Fatalf("an agency's certificate as a replica got %#v", m)
		}
	}
	// A replica's certificate, speaking as an agency: refused.
	rp := dialAs("central-2")
	if _, err := rp.Write(testkitHello(t)); err != nil {
		t.Fatal(err)
	}
	c.waitLine(`action: tls_handshake \| result: fail .*replica: 2 \| error: a replica's certificate, but not a replica's connection`, 10*time.Second)
	rp.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := protocol.NewReader(rp, 0).Next(); err == nil {
		t.Fatal("a replica's certificate got an answer as an agency")
	}
	c.signal(syscall.SIGTERM)
	c.wait(time.Minute)
}

func testkitHello(t *testing.T) []byte {
	b, err := protocol.Append(nil, &protocol.Hello{Agency: 1, Mode: protocol.ModeCSV})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compareStores stops the nodes and requires their stores identical: the
// same bets.csv, draw and winners, every bet of data once.
func (pc *processCluster) compareStores(t *testing.T, data string) {
	t.Helper()
	want := expectedWinners(t, data, pc.agency)
	live := pc.live()
	for _, i := range live {
		c := pc.procs[i]
		c.signal(syscall.SIGTERM)
		if code := c.wait(time.Minute); code != 0 {
			t.Fatalf("node exited %d:\n%s", code, c.output())
		}
	}
	exports := make([]bytes.Buffer, len(live))
	draws := make([]store.Round, len(live))
	for j, i := range live {
		db := pc.dbs[i]
		s, err := store.Open(db, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		if err := s.Export(&exports[j]); err != nil {
			t.Fatal(err)
		}
		if draws[j], err = s.Round(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	for i := 1; i < len(live); i++ {
		if !bytes.Equal(exports[i].Bytes(), exports[0].Bytes()) || !draws[i].DrawTime.Equal(draws[0].DrawTime) ||
			fmt.Sprint(draws[i].Winners) != fmt.Sprint(draws[0].Winners) {
			t.Fatalf("replica %d differs from replica 1 (%d vs %d bytes of bets.csv, draw %s vs %s)", i+1,
				exports[i].Len(), exports[0].Len(), draws[i].DrawTime, draws[0].DrawTime)
		}
	}
	rep := verifyStore(t, pc.dbs[live[0]], data, pc.agency)
	total := 0
	for a := 1; a <= pc.agency; a++ {
		total += len(fileBets(t, data, a))
	}
	if rep.total != total {
		t.Fatalf("stored %d bets, want %d", rep.total, total)
	}
	for a := 1; a <= pc.agency; a++ {
		if len(draws[0].Winners[a]) != want[a] {
			t.Fatalf("agency %d: %d winners stored, want %d", a, len(draws[0].Winners[a]), want[a])
		}
	}
}

// Fifty agencies (goroutines of this test, the agency package's own code)
// against three central processes whose leader is killed (-9) mid-run: every
// bet once, every winner, the same store on every replica.
func TestCluster_FiftyAgencies(t *testing.T) {
	clusterTest(t)
	const agencies, bets = 50, 400
	pc := startProcessCluster(t, agencies, "")
	lead := pc.leader(-1)
	done := make(chan swarmDone, 1)
	go func() {
		res, err := swarm.Run(context.Background(), swarm.Config{Addr: strings.Join(pc.addrs, ","), Agencies: agencies, Bets: bets,
			Window: 2, RetryTimeout: 5 * time.Minute})
		done <- swarmDone{res, err}
	}()
	pc.procs[lead].waitLine(`action: agencia_finalizada \| result: success .*finalizadas: 5 `, 2*time.Minute)
	pc.procs[lead].cmd.Process.Kill()
	pc.procs[lead].wait(time.Minute)
	pc.leader(lead)
	d := <-done
	if d.err != nil {
		t.Fatal(d.err)
	}
	pc.start(lead)
	pc.waitApplied()
	for _, c := range pc.procs {
		c.signal(syscall.SIGTERM)
		c.wait(time.Minute)
	}
	var first []byte
	for i, db := range pc.dbs {
		checkSwarm(t, db, agencies, bets, d.res)
		b := exportOf(t, db)
		if i == 0 {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("replica %d's bets.csv differs from replica 1's", i+1)
		}
	}
}
