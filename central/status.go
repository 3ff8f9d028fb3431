package central

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/loteria-nacional/tp0/cluster"
)

// roundStatus is a snapshot of the round for operators: the status page,
// its JSON and the metrics read it.
type roundStatus struct {
	Round     string  `json:"round"` // the round's start, RFC 3339
	State     string  `json:"state"`
	Agencies  int     `json:"agencies"`
	Finished  int     `json:"finished"`
	Delivered int     `json:"delivered"`
	Connected int     `json:"connected"`
	Bets      uint64  `json:"bets"`
	BetsPerS  float64 `json:"bets_per_second"`
	Drawn     bool    `json:"drawn"`
	Winners   int     `json:"winners"` // winning bets, all agencies, once drawn
	// Unseen counts the agencies with no row: nothing stored, not finished,
	// not connected. Rows, metrics series and their cost are only for the
	// agencies seen, however large AGENCIES is.
	Unseen int `json:"unseen"`
	// Cluster is this replica's view of its cluster, and Servers its
	// members (the leader's view of each); absent on one central.
	Cluster *cluster.Status  `json:"cluster,omitempty"`
	Servers []cluster.Server `json:"servers,omitempty"`

	rows    []agencyStatus
	commits uint64
}

// agencyStatus is one agency's row.
type agencyStatus struct {
	Agency    int    `json:"agency"`
	Committed uint64 `json:"committed"`
	Finished  bool   `json:"finished"`
	Connected bool   `json:"connected"`
	Delivered bool   `json:"delivered"`
	Winners   int    `json:"winners"` // once drawn; counts only: documents are personal data
}

// The states of a round, as the status page names them.
const (
	stateReceiving = "recibiendo apuestas"
	stateDrawing   = "sorteando"
	stateDrawn     = "sorteado, entregando ganadores"
	stateDone      = "terminada"
)

// status reads the round's state from the store and the live sessions.
func (c *Central) status() (roundStatus, error) {
	r, err := c.store.Round()
	if err != nil {
		return roundStatus{}, err
	}
	live := c.owners.connected()
	started, count := time.Unix(0, int64(c.round.Load())), c.barrier().agencies
	if c.cluster != nil {
		if serving, _ := c.cluster.Leader(); !serving {
			// A follower shows the round its store holds, not the last one
			// it took as a leader.
			started, count = r.Started, r.AgencyCount(c.opts.Agencies)
		}
	}
	st := roundStatus{Round: started.UTC().Format(time.RFC3339), Agencies: count,
		Bets: r.Bets, Drawn: r.Drawn, Connected: len(live), commits: c.store.Commits()}
	seen := map[int]bool{}
	for _, m := range []map[int]bool{live, r.Finished, r.Delivered} {
		for a := range m {
			seen[a] = true
		}
	}
	for a := range r.Committed {
		seen[a] = true
	}
	for a := range r.Winners {
		if len(r.Winners[a]) > 0 {
			seen[a] = true
		}
	}
	agencies := slices.Sorted(maps.Keys(seen))
	st.rows = make([]agencyStatus, 0, len(agencies))
	for _, a := range agencies {
		if a < 1 || a > count {
			continue
		}
		row := agencyStatus{Agency: a, Committed: r.Committed[a], Finished: r.Finished[a], Connected: live[a],
			Delivered: r.Delivered[a], Winners: len(r.Winners[a])}
		if row.Finished {
			st.Finished++
		}
		if row.Delivered {
			st.Delivered++
		}
		st.Winners += row.Winners
		st.rows = append(st.rows, row)
	}
	st.Unseen = count - len(st.rows)
	if c.cluster != nil {
		cs := c.cluster.Status()
		st.Cluster = &cs
		st.Servers, _ = c.cluster.Servers()
	}
	switch {
	case st.Drawn && st.Delivered >= st.Agencies:
		st.State = stateDone
	case st.Drawn:
		st.State = stateDrawn
	case st.Finished >= st.Agencies:
		st.State = stateDrawing
	default:
		st.State = stateReceiving
	}
	return st, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
