package e2e

import (
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/pki"
	"github.com/loteria-nacional/tp0/store"
)

// status is what a node's /api/status says of its cluster and round.
type nodeStatus struct {
	Cluster *struct {
		Term    uint64 `json:"term"`
		Applied uint64 `json:"applied_index"`
		ID      string `json:"cluster_id"`
	} `json:"cluster"`
	Rows []struct {
		Agency    int    `json:"agency"`
		Committed uint64 `json:"committed"`
	} `json:"rows"`
}

func (pc *processCluster) status(i int) nodeStatus {
	pc.t.Helper()
	resp, err := pc.get(i, "/api/status", 5*time.Second)
	if err != nil {
		pc.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st nodeStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Cluster == nil {
		pc.t.Fatalf("node %d's status: %v", i+1, err)
	}
	return st
}

// committed is node i's count of each agency's stored bets.
func (pc *processCluster) committed(i int) map[int]uint64 {
	out := map[int]uint64{}
	for _, r := range pc.status(i).Rows {
		out[r.Agency] = r.Committed
	}
	return out
}

// metrics returns node i's /metrics.
func (pc *processCluster) metrics(i int) string {
	pc.t.Helper()
	resp, err := pc.get(i, "/metrics", 5*time.Second)
	if err != nil {
		pc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// runAgencies starts agencies 1..pc.agency on data with every node's
// address (recording their histories in pc.hist when set).
func (pc *processCluster) runAgencies(data string, env ...string) []*proc {
	pc.t.Helper()
	procs := []*proc{nil}
	for id := 1; id <= pc.agency; id++ {
		e := append([]string{"CLI_SERVER_ADDRESS=" + strings.Join(pc.addrs, ","), "CLI_BATCH_WINDOW=1", "CLI_BATCH_MAXAMOUNT=40"}, env...)
		if pc.hist.dir != "" {
			e = append(e, pc.hist.env(id))
		}
		var wrap []string
		if pc.lab != nil {
			wrap = pc.lab.wrap(agencyMember(id))
		}
		procs = append(procs, startAgencyIn(pc.t, wrap, "agency", pc.procs[pc.live()[0]], id, data, e...))
	}
	return procs
}

// waitList runs server cluster list against node i until its output
// matches re, and returns it.
func (pc *processCluster) waitList(i int, re string) string {
	pc.t.Helper()
	var out string
	if !poll(time.Minute, func() bool {
		var err error
		out, err = pc.command(i, "cluster", "list")
		return err == nil && regexp.MustCompile(re).MatchString(out)
	}) {
		pc.t.Fatalf("server cluster list never matched %s:\n%s", re, out)
	}
	return out
}

// kill ends node i with SIGKILL.
func (pc *processCluster) kill(i int) {
	pc.procs[i].cmd.Process.Kill()
	pc.procs[i].wait(time.Minute)
}

// A node that cannot apply an entry (a disk that fails from entry N on)
// stops with one cluster_apply fail line and exits 1, where a supervisor
// restarts it; the others finish the round; restarted on a working disk it
// rebuilds its store from the log and ends identical to the others.
func TestCluster_FailedApplyExitsNonZero(t *testing.T) {
	clusterTest(t)
	pc := newProcessCluster(t, 2, "")
	// A new cluster bootstraps with all of its nodes: node 3 among them,
	// its disk failing from entry 40 on (the round's first batches).
	pc.env[2] = []string{"TP0_TEST_FAIL_APPLY=40"}
	for i := range 3 {
		pc.start(i)
	}
	pc.leader(-1)
	agencies := pc.runAgencies(genData)
	if code := pc.procs[2].wait(2 * time.Minute); code != 1 {
		t.Fatalf("the node that could not apply exited %d, want 1", code)
	}
	if n := len(pc.procs[2].grep(`action: cluster_apply \| result: fail`)); n != 1 {
		t.Fatalf("%d cluster_apply fail lines, want 1", n)
	}
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	pc.env[2] = nil
	pc.start(2)
	pc.procs[2].waitLine(`action: cluster_start \| result: in_progress .*almacen: reconstruido`, time.Minute)
	pc.waitApplied()
	// raft's signals where operators look: the rebuilt store, the leader's
	// view of its peers, commit latencies.
	for _, want := range []string{`tp0_cluster_store_trusted\{node="3"\} 0`, `tp0_cluster_restores_total\{node="3"\} \d`, `tp0_cluster_fsm_apply_seconds_count\{node="3"\} [1-9]`} {
		if m := pc.metrics(2); !regexp.MustCompile(want).MatchString(m) {
			t.Errorf("node 3's /metrics has no %s", want)
		}
	}
	lead := pc.servingNode()
	for _, want := range []string{`tp0_cluster_peer_lag_entries\{node="\d",peer="3"\} \d+`, `tp0_cluster_peer_last_contact_seconds\{node="\d",peer="3"\} [0-9]`,
		`tp0_cluster_commit_seconds_count\{node="\d"\} [1-9]`} {
		if m := pc.metrics(lead); !regexp.MustCompile(want).MatchString(m) {
			t.Errorf("the leader's /metrics has no %s:\n%s", want, m)
		}
	}
	pc.compareStores(t, genData)
}

// A follower's store on a full disk (a small tmpfs; raft's own folder
// elsewhere): the write that finds no space stops the node, exit 1; the
// others finish; with space again, it rebuilds and ends identical.
func TestCluster_FollowerOnAFullDisk(t *testing.T) {
	clusterTest(t)
	pc := newProcessCluster(t, 2, "")
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("no small tmpfs to fill (mount needs root): %v %s", err, out)
	}
	mounted := true
	unmount := func() {
		if mounted {
			exec.Command("umount", small).Run()
			mounted = false
		}
	}
	t.Cleanup(unmount)
	raftDir := t.TempDir()
	pc.dbs[2] = filepath.Join(small, "bets.db")
	link := func() {
		if err := os.Symlink(raftDir, pc.dbs[2]+".raft"); err != nil {
			t.Fatal(err)
		}
	}
	link()
	for i := range 3 {
		pc.start(i)
	}
	pc.leader(-1)
	agencies := pc.runAgencies(genData)
	if code := pc.procs[2].wait(2 * time.Minute); code != 1 {
		t.Fatalf("the node on a full disk exited %d, want 1", code)
	}
	pc.procs[2].waitLine(`action: cluster_apply \| result: fail .*no space left on device`, time.Second)
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	unmount()
	link()
	pc.start(2)
	pc.waitApplied()
	pc.compareStores(t, genData)
}

// Replica traffic is for replicas only: over mutual TLS, a replica's
// connection with an agency's certificate, with a replica certificate whose
// id is not a member (central-4), with a member's certificate claiming to
// be another, without a certificate, or in plaintext, is refused and
// logged, and the round goes on: no election, the same stores.
func TestCluster_ReplicaTrafficIsForReplicas(t *testing.T) {
	clusterTest(t)
	dir := clusterPKI(t)
	pc := startProcessCluster(t, 2, dir)
	lead := pc.leader(-1)
	f := (lead + 1) % 3
	term := pc.status(lead).Cluster.Term
	var addrs []string
	for _, a := range pc.addrs {
		addrs = append(addrs, "localhost"+a[strings.LastIndex(a, ":"):])
	}
	agencies := []*proc{nil}
	for id := 1; id <= 2; id++ {
		agencies = append(agencies, startAgency(t, pc.procs[lead], id, genData, "CLI_SERVER_ADDRESS="+strings.Join(addrs, ","),
			"CLI_BATCH_WINDOW=1", "CLI_BATCH_MAXAMOUNT=40", "CLI_TLS_CA="+filepath.Join(dir, "ca.crt"),
			fmt.Sprintf("CLI_TLS_CERT=%s/agency-%d.crt", dir, id), fmt.Sprintf("CLI_TLS_KEY=%s/agency-%d.key", dir, id)))
	}
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	clusterID := pc.status(f).Cluster.ID
	for _, probe := range []struct {
		name, pair string
		from       int
		logged     string
	}{
		{"AgencyCertificate", "agency-1", 1, `action: receive_message \| result: fail`},
		{"NotAMember", "central-4", 4, `action: cluster_peer \| result: fail .*node 4 is not a member`},
		{"AnotherMembersName", "central-4", 0, `action: cluster_peer \| result: fail .*certificate names replica 4, the connection claims node \d`},
		{"NoCertificate", "", 1, `action: tls_handshake \| result: fail`},
	} {
		t.Run(probe.name, func(t *testing.T) {
			before := len(pc.procs[f].grep(probe.logged))
			conn, err := dialReplica(pc.addrs[f], dir, probe.pair)
			if err == nil {
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				conn.Write([]byte{0xA2})
				from := probe.from
				if from == 0 {
					from = lead + 1 // a member, not the node dialled
				}
				conn.Write(replicaHello(t, clusterID, from, f+1))
				io.Copy(io.Discard, conn)
				conn.Close()
			}
			if !poll(10*time.Second, func() bool { return len(pc.procs[f].grep(probe.logged)) > before }) {
				t.Fatalf("node %d did not log the refusal (%s)", f+1, probe.logged)
			}
		})
	}
	plain, err := net.DialTimeout("tcp", pc.addrs[f], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	plain.Write([]byte{0xA2})
	plain.Write(replicaHello(t, clusterID, 1, f+1))
	pc.procs[f].waitLine(`action: cluster_peer \| result: fail .*in plaintext, but replicas speak over mutual TLS here`, 10*time.Second)
	plain.Close()
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	if got := pc.status(lead).Cluster.Term; got != term {
		t.Fatalf("the term moved from %d to %d while replica traffic was forged", term, got)
	}
	pc.waitApplied()
	pc.compareStores(t, genData)
}

// dialReplica opens a TLS connection to addr with dir's pair (none: "").
func dialReplica(addr, dir, pair string) (*tls.Conn, error) {
	_, pool, err := pki.Load(filepath.Join(dir, "central-1.crt"), filepath.Join(dir, "central-1.key"), filepath.Join(dir, "ca.crt"), nil, time.Now())
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: "127.0.0.1"}
	if pair != "" {
		cert, _, err := pki.Load(filepath.Join(dir, pair+".crt"), filepath.Join(dir, pair+".key"), filepath.Join(dir, "ca.crt"), nil, time.Now())
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	return conn, conn.Handshake()
}

// replicaHello is the replicas' handshake hello (cluster/handshake.go).
func replicaHello(t *testing.T, clusterID string, from, to int) []byte {
	t.Helper()
	b := []byte{1}
	id, err := hex.DecodeString(clusterID)
	if err != nil || len(id) != 16 && clusterID != "" {
		t.Fatalf("cluster ID %q: %v", clusterID, err)
	}
	b = append(b, append(id, make([]byte, 16-len(id))...)...)
	return append(b, byte(from>>24), byte(from>>16), byte(from>>8), byte(from), byte(to>>24), byte(to>>16), byte(to>>8), byte(to))
}

// A multi-node cluster without mutual TLS does not start unless the
// operator accepts plaintext replica traffic (CLUSTER_INSECURE=true).
func TestCluster_PlaintextNeedsInsecure(t *testing.T) {
	t.Parallel()
	port := freePorts(t, 1)[0]
	c := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", fmt.Sprintf("SERVER_PORT=%d", port), "DB_PATH="+filepath.Join(t.TempDir(), "bets.db"),
		fmt.Sprintf("CLUSTER_NODES=1=127.0.0.1:%d,2=127.0.0.1:1,3=127.0.0.1:2", port), "CLUSTER_NODE_ID=1")
	if code := c.wait(time.Minute); code != 1 {
		t.Fatalf("a plaintext cluster exited %d, want 1", code)
	}
	c.waitLine(`action: config \| result: fail .*CLUSTER_NODES .*without mutual TLS.*CLUSTER_INSECURE=true`, time.Second)
}

// Without TLS (CLUSTER_INSECURE=true), what an agency's port receives as
// replica traffic still has to pass the handshake: raft's TimeoutNow sent
// raw (no handshake), or a hello without the cluster's ID, is refused, and
// no election follows. Connections that only send the replica marker are
// closed within the handshake's bound and hold no agency's slot: with
// MAX_CONNECTIONS=64, a hundred of them do not lock the agencies out.
func TestCluster_ForgedReplicaTrafficIsRefused(t *testing.T) {
	clusterTest(t)
	pc := newProcessCluster(t, 2, "")
	for i := range pc.procs {
		pc.env[i] = []string{"MAX_CONNECTIONS=64"}
		pc.start(i)
	}
	lead := pc.leader(-1)
	f := (lead + 1) % 3
	term := pc.status(lead).Cluster.Term
	// raft's TimeoutNow (rpc type 3) with a msgpack map {ProtocolVersion: 3}: what a forger who knows raft's wire format sends first.
	timeoutNow := []byte{0xA2, 0x03, 0x81, 0xaf, 'P', 'r', 'o', 't', 'o', 'c', 'o', 'l', 'V', 'e', 'r', 's', 'i', 'o', 'n', 0x03}
	for _, raw := range [][]byte{timeoutNow, append([]byte{0xA2}, replicaHello(t, "", lead+1, f+1)...)} {
		conn, err := net.DialTimeout("tcp", pc.addrs[f], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(raw)
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		io.Copy(io.Discard, conn)
		conn.Close()
	}
	pc.procs[f].waitLine(`action: cluster_peer \| result: fail .*no cluster ID`, 10*time.Second)
	var markers []net.Conn
	for range 100 {
		conn, err := net.DialTimeout("tcp", pc.addrs[lead], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte{0xA2})
		markers = append(markers, conn)
	}
	agencies := pc.runAgencies(genData)
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	for _, conn := range markers {
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Fatalf("a marker-only connection was not closed by the central: %v", err)
		}
		conn.Close()
	}
	if got := pc.status(lead).Cluster.Term; got != term {
		t.Fatalf("the term moved from %d to %d: a forged message started an election", term, got)
	}
	pc.waitApplied()
	pc.compareStores(t, genData)
}

// A machine lost for good is replaced by membership changes: node 3 is
// killed mid-round and removed (server cluster remove 3), a new node 4 at a
// new port starts empty with CLUSTER_JOIN=true and is added (server cluster
// add 4 HOST:PORT); the round finishes exactly once and node 4 holds the
// same rows. A change sent to a follower is refused with the leader's
// address.
func TestCluster_ReplaceLostMachine(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	agencies := pc.runAgencies(genData)
	lead := pc.leader(-1)
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	pc.kill(2)
	pc.gone[2] = true
	lead = pc.leader(2)
	follower := 1 - lead
	if out, err := pc.command(follower, "cluster", "remove", "3"); err == nil || !strings.Contains(out, "the leader is node") {
		t.Fatalf("a change sent to a follower: %v\n%s", err, out)
	}
	if out, err := pc.command(lead, "cluster", "remove", "3"); err != nil {
		t.Fatalf("remove 3: %v\n%s", err, out)
	}
	four := pc.addNode()
	pc.start(four)
	pc.procs[four].waitLine(`action: cluster_start \| result: success .*unirse: true`, time.Minute)
	if out, err := pc.command(lead, "cluster", "add", "4", pc.addrs[four]); err != nil || !strings.Contains(out, "added as a non-voter") {
		t.Fatalf("add 4: %v\n%s", err, out)
	}
	// The leader promotes it once it has caught up.
	out := pc.waitList(lead, `(?m)^4 +`+regexp.QuoteMeta(pc.addrs[four])+` +voter +follower +yes`)
	for _, want := range []string{`(?m)^1 +127`, `(?m)^2 +127`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("server cluster list has no row %s:\n%s", want, out)
		}
	}
	if regexp.MustCompile(`(?m)^3 `).MatchString(out) {
		t.Errorf("node 3 is still listed:\n%s", out)
	}
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	pc.waitApplied()
	pc.compareStores(t, genData)
}

// Two rounds through one cluster, the leader killed (-9) in each: the
// second begins with server round new once the first is over, and every
// replica keeps the first in an archive. A backup taken mid-round holds,
// per agency, a prefix of its bets between those acked before it and after
// it; restored, it is a one-node central's store, or the first state of a
// new cluster (server restore), on which the agencies finish the round.
func TestCluster_TwoRoundsAndABackup(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	killMidRound := func() {
		lead := pc.leader(-1)
		pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
		pc.kill(lead)
		pc.leader(lead)
		pc.start(lead)
	}
	first := pc.runAgencies(genData)
	killMidRound()
	waitAgencies(t, first, expectedWinners(t, genData, 2))
	lead := pc.leader(-1)
	if out, err := pc.command(lead, "round", "new"); err != nil {
		t.Fatalf("round new: %v\n%s", err, out)
	}
	second := pc.runAgencies(genData)
	lead = pc.leader(-1)
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	backupFile := filepath.Join(t.TempDir(), "backup.db")
	before := pc.committed(lead)
	if out, err := pc.command(lead, "backup", "--out", backupFile); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	after := pc.committed(lead)
	killMidRound()
	waitAgencies(t, second, expectedWinners(t, genData, 2))
	pc.waitApplied()
	for _, i := range pc.live() {
		if archives, err := store.Archives(pc.dbs[i]); err != nil || len(archives) != 1 {
			t.Fatalf("node %d's archives: %v, %v", i+1, archives, err)
		}
	}
	pc.compareStores(t, genData)

	one := filepath.Join(t.TempDir(), "one.db")
	if out, err := exec.Command(filepath.Join(binDir, "server"), "restore", "--from", backupFile, "--db", one).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	rep := verifyStore(t, one, genData, 2)
	for a := 1; a <= 2; a++ {
		if got := uint64(rep.perAgency[a]); got < before[a] || got > after[a] {
			t.Fatalf("agency %d: the backup holds %d bets; %d were acked before it, %d after", a, got, before[a], after[a])
		}
	}
	s, err := store.Open(one, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	applied, _ := s.AppliedIndex()
	s.Close()
	if applied != 0 {
		t.Fatalf("the one-node store kept the cluster's applied index %d", applied)
	}

	port := freePorts(t, 1)[0]
	seeded := filepath.Join(t.TempDir(), "bets.db")
	nodes := fmt.Sprintf("1=127.0.0.1:%d", port)
	if out, err := exec.Command(filepath.Join(binDir, "server"), "restore", "--from", backupFile, "--db", seeded,
		"--cluster-nodes", nodes, "--cluster-node-id", "1").CombinedOutput(); err != nil {
		t.Fatalf("restore as a cluster: %v\n%s", err, out)
	}
	c := start(t, "server", t.TempDir(), "SERVER_IP=127.0.0.1", fmt.Sprintf("SERVER_PORT=%d", port), "AGENCIES=2", "DB_PATH="+seeded,
		"CLUSTER_NODES="+nodes, "CLUSTER_NODE_ID=1")
	c.waitLine(`action: cluster_lead \| result: success`, time.Minute)
	node := &central{proc: c, addr: fmt.Sprintf("127.0.0.1:%d", port), dbPath: seeded}
	resumed := []*proc{nil, startAgency(t, node, 1, genData), startAgency(t, node, 2, genData)}
	waitAgencies(t, resumed, expectedWinners(t, genData, 2))
	c.signal(syscall.SIGTERM)
	if code := c.wait(time.Minute); code != 0 {
		t.Fatalf("the seeded node exited %d", code)
	}
	if got := verifyStore(t, seeded, genData, 2); got.total != len(fileBets(t, genData, 1))+len(fileBets(t, genData, 2)) {
		t.Fatalf("the seeded cluster stored %d bets", got.total)
	}
}

// A cluster that lost its quorum for good (two of three machines gone
// mid-round) is recovered on the survivor: stopped, server cluster recover
// makes it the whole cluster, and started with CLUSTER_NODES naming only
// itself it serves the agencies, which finish the round exactly once.
func TestCluster_RecoverAfterQuorumLost(t *testing.T) {
	clusterTest(t)
	pc := startProcessCluster(t, 2, "")
	agencies := pc.runAgencies(genData)
	lead := pc.servingNode()
	pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	for _, i := range pc.live() {
		if i != lead {
			pc.kill(i)
			pc.gone[i] = true
		}
	}
	pc.procs[lead].signal(syscall.SIGTERM)
	if code := pc.procs[lead].wait(time.Minute); code != 0 {
		t.Fatalf("the survivor exited %d", code)
	}
	self := fmt.Sprintf("%d=%s", lead+1, pc.addrs[lead])
	out, err := exec.Command(filepath.Join(binDir, "server"), "cluster", "recover", "--db", pc.dbs[lead], "--node", fmt.Sprint(lead+1), "--nodes", self).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "WARNING") {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	pc.env[lead] = []string{"CLUSTER_NODES=" + self}
	pc.start(lead)
	pc.procs[lead].waitLine(`action: cluster_lead \| result: success`, time.Minute)
	waitAgencies(t, agencies, expectedWinners(t, genData, 2))
	pc.compareStores(t, genData)
}
