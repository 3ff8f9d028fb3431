package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Real network faults: three nodes and two agencies, each a process in a
// network namespace of its own on a bridge (netLab), and the faults the
// kernel makes: iptables rules dropping packets (one way or both, or a
// random share of them) and a tbf rate that queues them. After each fault
// heals, the same checkers as the chaos run: every agency's bets stored
// once and in order, its winners, every replica's store identical, and the
// agencies' histories linearizable (porcupine).
func TestNetns(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("network fault tests skipped in -short mode")
	}
	needNetLab(t)
	for _, f := range []struct {
		name  string
		fault func(*labRound)
	}{
		{"LeaderCutFromFollowers", (*labRound).leaderCutFromFollowers},
		{"LeaderSendsButCannotReceive", (*labRound).leaderCannotReceive},
		{"FlappingLossyLink", (*labRound).flappingLossyLink},
		{"PartitionHealsDuringTheDraw", (*labRound).partitionDuringDraw},
		{"MinorityAgencyRetries30s", (*labRound).minorityRetries},
	} {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			r := startLabRound(t)
			f.fault(r)
			r.finish()
		})
	}
}

// A labRound is a round in a netLab: nodes n1..n3 (10.88.0.1-3), agencies
// a1 and a2 (10.88.0.101-102) streaming midData to every node's address.
type labRound struct {
	t        *testing.T
	lab      *netLab
	pc       *processCluster
	agencies []*proc
}

// labPort is every node's port (each has its own address).
const labPort = 7000

func agencyMember(id int) string { return fmt.Sprintf("a%d", id) }

// member is node i's member name in pc.lab.
func (pc *processCluster) member(i int) string { return fmt.Sprintf("n%d", i+1) }

// wrap runs node i's programs in its namespace (none outside a lab).
func (pc *processCluster) wrap(i int) []string {
	if pc.lab == nil {
		return nil
	}
	return pc.lab.wrap(pc.member(i))
}

func startLabRound(t *testing.T) *labRound {
	t.Helper()
	lab := newNetLab(t)
	pc := &processCluster{t: t, agency: 2, gone: map[int]bool{}, join: map[int]bool{}, env: map[int][]string{}, lab: lab}
	var parts []string
	for i := range 3 {
		addr := fmt.Sprintf("%s:%d", lab.add(pc.member(i), i+1), labPort)
		pc.addrs = append(pc.addrs, addr)
		parts = append(parts, fmt.Sprintf("%d=%s", i+1, addr))
		pc.dbs = append(pc.dbs, t.TempDir()+"/bets.db")
	}
	for id := 1; id <= 2; id++ {
		lab.add(agencyMember(id), 100+id)
	}
	pc.nodes = strings.Join(parts, ",")
	pc.procs = make([]*central, 3)
	pc.admin = make([]string, 3)
	for i := range 3 {
		pc.start(i)
	}
	pc.servingNode()
	pc.hist = newHistories(t)
	r := &labRound{t: t, lab: lab, pc: pc}
	r.agencies = pc.runAgencies(midData, "CLI_SERVER_TIMEOUT=3s")
	return r
}

// finish heals every member, lets the round end, and runs the checkers.
func (r *labRound) finish() {
	r.t.Helper()
	for m := range r.lab.members {
		r.lab.heal(m)
	}
	waitAgencies(r.t, r.agencies, expectedWinners(r.t, midData, 2))
	r.pc.waitApplied()
	r.pc.compareStores(r.t, midData)
	r.pc.hist.check(r.t, 2, midData)
}

// ingesting waits for the leader to store batches, and returns it.
func (r *labRound) ingesting() int {
	r.t.Helper()
	lead := r.pc.leader(-1)
	r.pc.procs[lead].waitLine(`action: apuesta_recibida \| result: success`, time.Minute)
	return lead
}

// followers are the members of the nodes other than lead.
func (r *labRound) followers(lead int) []string {
	var out []string
	for i := range r.pc.procs {
		if i != lead {
			out = append(out, r.pc.member(i))
		}
	}
	return out
}

// newLeaderServes waits for a node other than old to lead and store a
// batch, and returns it.
func (r *labRound) newLeaderServes(old int) int {
	r.t.Helper()
	next := r.pc.leader(old)
	before := len(r.pc.procs[next].grep(`action: apuesta_recibida \| result: success`))
	if !poll(time.Minute, func() bool {
		return len(r.pc.procs[next].grep(`action: apuesta_recibida \| result: success`)) > before
	}) {
		r.t.Fatalf("node %d leads but stores nothing within a minute", next+1)
	}
	return next
}

// The leader loses both followers while the agencies still reach it: it
// must step down and acknowledge nothing it cannot commit; the agencies
// move to the new leader.
func (r *labRound) leaderCutFromFollowers() {
	lead := r.ingesting()
	r.lab.cut(r.pc.member(lead), r.followers(lead)...)
	r.pc.procs[lead].waitLine(`action: cluster_role \| result: success .*rol: (follower|candidate)`, time.Minute)
	r.newLeaderServes(lead)
}

// The leader's packets leave but nothing reaches it: the followers hear
// it, it hears no one (agencies included), and must not keep leading.
func (r *labRound) leaderCannotReceive() {
	lead := r.ingesting()
	r.lab.iptables(r.pc.member(lead), "INPUT -i eth0 -j DROP")
	r.newLeaderServes(lead)
	hold(2 * time.Second) // the one-way fault goes on while the new leader serves
}

// The leader's link drops 30–60% of its packets in both directions, on
// and off, its rate held to 4 Mbit/s by a tbf queue, for 10 s.
func (r *labRound) flappingLossyLink() {
	lead := r.ingesting()
	m := r.pc.member(lead)
	seed := uint64(time.Now().UnixNano())
	r.t.Logf("flapping link on node %d, seed %d", lead+1, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	r.lab.in(m, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "32kbit", "latency", "300ms")
	end := time.Now().Add(10 * time.Second)
	for on := true; time.Now().Before(end); on = !on {
		r.lab.in(m, "iptables", "-w", "-F")
		if on {
			p := fmt.Sprintf("%.2f", 0.3+0.3*rng.Float64())
			r.lab.iptables(m, "INPUT -i eth0 -m statistic --mode random --probability "+p+" -j DROP",
				"OUTPUT -o eth0 -m statistic --mode random --probability "+p+" -j DROP")
		}
		hold(500*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second))))
	}
}

// Agency 2's link is slow (a 1 Mbit/s tbf rate), so agency 1 finishes
// first; then the leader is cut from the followers, the last finish and
// its draw happen on the other side, and the partition heals as the draw
// is logged: the old leader catches up to the same winners.
func (r *labRound) partitionDuringDraw() {
	r.lab.in(agencyMember(2), "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1mbit", "burst", "16kbit", "latency", "500ms")
	lead := r.ingesting()
	r.pc.procs[lead].waitLine(`action: agencia_finalizada \| result: success .*finalizadas: 1 `, 2*time.Minute)
	if len(r.pc.procs[lead].grep(`action: sorteo \| result: success`)) > 0 {
		r.t.Fatal("the draw came before the partition: agency 2's slow link did not hold it back")
	}
	r.lab.cut(r.pc.member(lead), r.followers(lead)...)
	var drew int
	if !poll(3*time.Minute, func() bool {
		for i, c := range r.pc.procs {
			if i != lead && len(c.grep(`action: sorteo \| result: success`)) > 0 {
				drew = i
				return true
			}
		}
		return false
	}) {
		r.t.Fatal("no draw on the majority side within 3 minutes")
	}
	r.lab.heal(r.pc.member(lead))
	r.t.Logf("node %d drew while node %d was cut off", drew+1, lead+1)
}

// The leader and agency 1 are cut from the rest (the two followers and
// agency 2) for 30 s: agency 1 keeps retrying the minority, which can
// commit nothing, and finishes once the partition heals.
func (r *labRound) minorityRetries() {
	lead := r.ingesting()
	followers := r.followers(lead)
	r.lab.cut(r.pc.member(lead), followers...)
	r.lab.cut(agencyMember(1), followers...)
	r.lab.cut(agencyMember(2), r.pc.member(lead))
	r.newLeaderServes(lead)
	hold(30 * time.Second)
	select {
	case <-r.agencies[1].done:
		r.t.Fatalf("agency 1 gave up in the minority:\n%s", r.agencies[1].output())
	default:
	}
}
