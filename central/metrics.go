package central

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/protocol"
)

// metrics are the central's Prometheus metrics. Counters of events are
// updated where they happen; the state of the round (bets per agency,
// finishes, the draw, deliveries) is read from the store when scraped, so
// there is one source of truth.
type metrics struct {
	reg           *prometheus.Registry
	batches       *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	sessions      prometheus.Gauge
	refused       prometheus.Counter
	protoErrors   *prometheus.CounterVec
	drawSeconds   prometheus.Gauge
}

func newMetrics(c *Central) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tp0_batches_total",
			Help: "Batches received, by result (stored, retry: all bets stored before, refused)."}, []string{"result"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tp0_commit_seconds",
			Help:    "Time to store a batch durably (validation, transaction, fsync), as its session waited for it.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tp0_connections_open",
			Help: "Connections being served (sessions, echo checks)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "tp0_connections_refused_total",
			Help: "Connections refused at the connection limit."}),
		protoErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tp0_protocol_errors_total",
			Help: "Error replies sent to agencies, by code."}, []string{"code"}),
		drawSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tp0_draw_duration_seconds",
			Help: "How long the draw took (0 until it ran in this process)."}),
	}
	for _, code := range protocol.Codes() {
		m.protoErrors.WithLabelValues(code.String()) // every code, at 0
	}
	m.reg.MustRegister(m.batches, m.commitSeconds, m.sessions, m.refused, m.protoErrors, m.drawSeconds,
		&roundCollector{c: c},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// roundCollector reads the round's state from the store at each scrape.
type roundCollector struct{ c *Central }

var (
	descBets      = prometheus.NewDesc("tp0_bets_stored", "Bets stored, per agency.", []string{"agency"}, nil)
	descBetsTotal = prometheus.NewDesc("tp0_bets_stored_total", "Bets stored, all agencies.", nil, nil)
	descFinished  = prometheus.NewDesc("tp0_agencies_finished", "Agencies that finished sending.", nil, nil)
	descAgencies  = prometheus.NewDesc("tp0_agencies", "Agencies the draw waits for (AGENCIES).", nil, nil)
	descDrawn     = prometheus.NewDesc("tp0_draw_done", "1 once the draw's result is stored.", nil, nil)
	descWinners   = prometheus.NewDesc("tp0_winners", "Winning bets, per agency, once drawn.", []string{"agency"}, nil)
	descDelivered = prometheus.NewDesc("tp0_winners_delivered", "Agencies that confirmed receipt of their winners.", nil, nil)
	descCommits   = prometheus.NewDesc("tp0_commits_total", "Write transactions committed (each one fsync).", nil, nil)
	descScrapeErr = prometheus.NewDesc("tp0_store_read_errors_total", "Scrapes that could not read the store.", nil, nil)
	descRole      = prometheus.NewDesc("tp0_cluster_role", "1 for this node's raft role (a cluster only).", []string{"node", "role"}, nil)
	descTerm      = prometheus.NewDesc("tp0_cluster_term", "This node's raft term.", []string{"node"}, nil)
	descCommit    = prometheus.NewDesc("tp0_cluster_commit_index", "The last log index this node knows committed.", []string{"node"}, nil)
	descApplied   = prometheus.NewDesc("tp0_cluster_applied_index", "The last log index durable in this replica's store.", []string{"node"}, nil)
	descServing   = prometheus.NewDesc("tp0_cluster_serving", "1 while this node leads and serves agencies.", []string{"node"}, nil)

	descLastContact = prometheus.NewDesc("tp0_cluster_last_contact_seconds", "How long ago this follower last heard from a leader (0 on the leader, -1 never).", []string{"node"}, nil)
	descCommitSecs  = prometheus.NewDesc("tp0_cluster_commit_seconds", "Writes of the leader, from raft's Apply until committed by a quorum and applied here.", []string{"node"}, nil)
	descApplySecs   = prometheus.NewDesc("tp0_cluster_fsm_apply_seconds", "Batches of entries applied to this replica's store.", []string{"node"}, nil)
	descPending     = prometheus.NewDesc("tp0_cluster_fsm_pending", "Committed batches waiting to be applied to this replica's store.", []string{"node"}, nil)
	descSnapshots   = prometheus.NewDesc("tp0_cluster_snapshots_total", "Snapshots this node took.", []string{"node"}, nil)
	descSnapSecs    = prometheus.NewDesc("tp0_cluster_snapshot_duration_seconds", "How long the last snapshot took to write.", []string{"node"}, nil)
	descSnapBytes   = prometheus.NewDesc("tp0_cluster_snapshot_bytes", "The last snapshot's size.", []string{"node"}, nil)
	descRestores    = prometheus.NewDesc("tp0_cluster_restores_total", "Snapshots restored into this replica's store (a rebuild, or one sent by the leader).", []string{"node"}, nil)
	descTrusted     = prometheus.NewDesc("tp0_cluster_store_trusted", "1 when this replica's store was trusted at start (a clean stop), 0 when it was rebuilt.", []string{"node"}, nil)
	descVersion     = prometheus.NewDesc("tp0_cluster_version", "The cluster's version in this replica's log: the entry format every member reads.", []string{"node"}, nil)
	descChecks      = prometheus.NewDesc("tp0_cluster_integrity_checks_total", "Checkpoints this replica's store was held to and matched the leader's, since the node started.", []string{"node"}, nil)
	descChecked     = prometheus.NewDesc("tp0_cluster_integrity_checked_index", "The log index of the last checkpoint this replica's store matched (0: none).", []string{"node"}, nil)
	descDiverged    = prometheus.NewDesc("tp0_cluster_integrity_diverged", "1 when this replica's store differed from the leader's at a checkpoint, in this run or the last (it was rebuilt since).", []string{"node"}, nil)
	descPeerContact = prometheus.NewDesc("tp0_cluster_peer_last_contact_seconds", "The leader's view: how long ago each peer last answered (-1: never).", []string{"node", "peer"}, nil)
	descPeerLog     = prometheus.NewDesc("tp0_cluster_peer_log_index", "The leader's view: the last log index each peer reported.", []string{"node", "peer"}, nil)
	descPeerLag     = prometheus.NewDesc("tp0_cluster_peer_lag_entries", "The leader's view: how many entries each peer is behind the leader's log.", []string{"node", "peer"}, nil)
)

var clusterDescs = []*prometheus.Desc{descRole, descTerm, descCommit, descApplied, descServing, descLastContact, descCommitSecs, descApplySecs,
	descPending, descSnapshots, descSnapSecs, descSnapBytes, descRestores, descTrusted, descVersion, descChecks, descChecked, descDiverged,
	descPeerContact, descPeerLog, descPeerLag}

func (rc *roundCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append([]*prometheus.Desc{descBets, descBetsTotal, descFinished, descAgencies, descDrawn, descWinners, descDelivered, descCommits, descScrapeErr},
		clusterDescs...) {
		ch <- d
	}
}

func (rc *roundCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := rc.c.status()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.CounterValue, 1)
		return
	}
	for _, a := range st.rows {
		ch <- prometheus.MustNewConstMetric(descBets, prometheus.GaugeValue, float64(a.Committed), itoa(a.Agency))
		if st.Drawn {
			ch <- prometheus.MustNewConstMetric(descWinners, prometheus.GaugeValue, float64(a.Winners), itoa(a.Agency))
		}
	}
	ch <- prometheus.MustNewConstMetric(descBetsTotal, prometheus.GaugeValue, float64(st.Bets))
	ch <- prometheus.MustNewConstMetric(descFinished, prometheus.GaugeValue, float64(st.Finished))
	ch <- prometheus.MustNewConstMetric(descAgencies, prometheus.GaugeValue, float64(st.Agencies))
	ch <- prometheus.MustNewConstMetric(descDrawn, prometheus.GaugeValue, b2f(st.Drawn))
	ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.GaugeValue, float64(st.Delivered))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(st.commits))
	if cs := st.Cluster; cs != nil {
		node := itoa(cs.Node)
		ch <- prometheus.MustNewConstMetric(descRole, prometheus.GaugeValue, 1, node, cs.Role)
		ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, float64(cs.Term), node)
		ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, float64(cs.Commit), node)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(cs.Applied), node)
		ch <- prometheus.MustNewConstMetric(descServing, prometheus.GaugeValue, b2f(cs.Serving), node)
		ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(cs.Version), node)
		ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(cs.Integrity.Checks), node)
		ch <- prometheus.MustNewConstMetric(descChecked, prometheus.GaugeValue, float64(cs.Integrity.Checked), node)
		ch <- prometheus.MustNewConstMetric(descDiverged, prometheus.GaugeValue, b2f(cs.Integrity.Diverged != ""), node)
		rc.collectSignals(ch, node, rc.c.cluster.Signals())
		for _, sv := range st.Servers {
			if sv.ID == cs.Node || cs.Role != "leader" {
				continue
			}
			peer := itoa(sv.ID)
			contact := -1.0
			if sv.LastContactMs >= 0 {
				contact = float64(sv.LastContactMs) / 1000
			}
			ch <- prometheus.MustNewConstMetric(descPeerContact, prometheus.GaugeValue, contact, node, peer)
			ch <- prometheus.MustNewConstMetric(descPeerLog, prometheus.GaugeValue, float64(sv.LastLog), node, peer)
			ch <- prometheus.MustNewConstMetric(descPeerLag, prometheus.GaugeValue, float64(sv.Lag), node, peer)
		}
	}
}

// collectSignals exports raft's signals of this node.
func (rc *roundCollector) collectSignals(ch chan<- prometheus.Metric, node string, s cluster.Signals) {
	contact := s.LastContact.Seconds()
	if s.LastContact < 0 {
		contact = -1
	}
	ch <- prometheus.MustNewConstMetric(descLastContact, prometheus.GaugeValue, contact, node)
	ch <- prometheus.MustNewConstHistogram(descCommitSecs, s.Commit.Count, s.Commit.Sum, s.Commit.Buckets, node)
	ch <- prometheus.MustNewConstHistogram(descApplySecs, s.FSMApply.Count, s.FSMApply.Sum, s.FSMApply.Buckets, node)
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.FSMPending), node)
	ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(s.Snapshots), node)
	ch <- prometheus.MustNewConstMetric(descSnapSecs, prometheus.GaugeValue, s.SnapshotTime.Seconds(), node)
	ch <- prometheus.MustNewConstMetric(descSnapBytes, prometheus.GaugeValue, float64(s.SnapshotSize), node)
	ch <- prometheus.MustNewConstMetric(descRestores, prometheus.CounterValue, float64(s.Restores), node)
	ch <- prometheus.MustNewConstMetric(descTrusted, prometheus.GaugeValue, b2f(s.Trusted), node)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeCommit records a batch's outcome and how long storing it took.
func (m *metrics) observeCommit(start time.Time, stored, size int, err error) {
	switch {
	case err != nil:
		m.batches.WithLabelValues("refused").Inc()
		return
	case stored == 0 && size > 0:
		m.batches.WithLabelValues("retry").Inc()
	default:
		m.batches.WithLabelValues("stored").Inc()
	}
	m.commitSeconds.Observe(time.Since(start).Seconds())
}
