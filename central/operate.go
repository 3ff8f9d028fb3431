package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/loteria-nacional/tp0/adminapi"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// The operators' commands, on the admin listener: the API of package
// adminapi (its paths and bodies), which the server's operator commands
// speak. Every change, and the backup (it holds personal data), needs the
// admin token as a bearer credential, even on loopback: a change with no
// ADMIN_TOKEN configured is refused. A bearer token is never sent by a
// browser by itself, so a page on another site cannot make one. A change
// sent to a follower is refused with the leader (409 Conflict,
// adminapi.Error); it is not forwarded.

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// opFailed answers err with its status: not the leader, a round still
// open or a refused membership change (409), a bad request (400), others
// (500, the detail logged).
func (c *Central) opFailed(w http.ResponseWriter, op string, err error) {
	var nl *cluster.NotLeaderError
	status := http.StatusInternalServerError
	body := adminapi.Error{Error: err.Error()}
	switch {
	case errors.As(err, &nl):
		status, body.Leader, body.LeaderAdmin = http.StatusConflict, nl.Leader, nl.LeaderAdmin
	case errors.Is(err, cluster.ErrNotLeader):
		_, leader := c.cluster.Leader()
		status, body.Leader, body.LeaderAdmin = http.StatusConflict, leader, c.cluster.LeaderAdmin()
	case errors.Is(err, store.ErrRoundOpen), errors.Is(err, cluster.ErrMember):
		status = http.StatusConflict
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	}
	c.log.Warningf("action: admin | result: fail | operacion: %s | error: %s", op, logformat.Value(err.Error()))
	writeJSON(w, status, body)
}

var errBadRequest = errors.New("bad request")

// operations adds the operators' commands to mux.
func (c *Central) operations(mux *http.ServeMux) {
	mux.HandleFunc("GET "+adminapi.PathCluster, func(w http.ResponseWriter, r *http.Request) {
		if c.cluster == nil {
			writeJSON(w, http.StatusNotFound, adminapi.Error{Error: "this central is not a cluster (CLUSTER_NODES)"})
			return
		}
		servers, err := c.cluster.Servers()
		if err != nil {
			c.opFailed(w, "cluster_list", err)
			return
		}
		st := c.cluster.Status()
		writeJSON(w, http.StatusOK, adminapi.ClusterView{ClusterID: st.Cluster, Node: st.Node, Leader: st.Leader, LeaderAdmin: c.cluster.LeaderAdmin(),
			Version: st.Version, Integrity: st.Integrity, Servers: servers})
	})
	mux.HandleFunc("POST "+adminapi.PathServers, c.needCluster(func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.AddServer
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID < 1 || req.Address == "" {
			c.opFailed(w, "cluster_add", fmt.Errorf(`%w: want {"id": N, "address": "host:port"}`, errBadRequest))
			return
		}
		suffrage, err := c.cluster.AddServer(req.ID, req.Address, req.Readdress)
		if err != nil {
			c.opFailed(w, "cluster_add", err)
			return
		}
		c.log.Infof("action: admin | result: success | operacion: cluster_add | nodo: %d | direccion: %s | voto: %s", req.ID, logformat.Value(req.Address), suffrage)
		writeJSON(w, http.StatusOK, adminapi.AddedServer{ID: req.ID, Address: req.Address, Suffrage: suffrage})
	}))
	mux.HandleFunc("DELETE "+adminapi.PathServers+"/{id}", c.needCluster(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 {
			c.opFailed(w, "cluster_remove", fmt.Errorf("%w: %q is not a node id", errBadRequest, r.PathValue("id")))
			return
		}
		if err := c.cluster.RemoveServer(id); err != nil {
			c.opFailed(w, "cluster_remove", err)
			return
		}
		c.log.Infof("action: admin | result: success | operacion: cluster_remove | nodo: %d", id)
		writeJSON(w, http.StatusOK, map[string]any{"removed": id})
	}))
	mux.HandleFunc("POST "+adminapi.PathRound, func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.RoundRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && r.ContentLength != 0 {
			c.opFailed(w, "round_new", fmt.Errorf(`%w: want {"agencies": N} or nothing`, errBadRequest))
			return
		}
		agencies := req.Agencies
		if agencies == 0 {
			agencies = c.opts.Agencies
		}
		if agencies < 1 || agencies > MaxAgencies {
			c.opFailed(w, "round_new", fmt.Errorf("%w: agencies must be between 1 and %d", errBadRequest, MaxAgencies))
			return
		}
		round, err := c.NewRound(r.Context(), agencies)
		if err != nil {
			c.opFailed(w, "round_new", err)
			return
		}
		writeJSON(w, http.StatusOK, adminapi.RoundView{Round: round.UTC().Format(time.RFC3339Nano), Agencies: agencies})
	})
	mux.HandleFunc("GET "+adminapi.PathBackup, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		if c.cluster != nil {
			// A follower's copy may lack the newest acknowledged bets: the
			// client says so, and writes it into the copy.
			st := c.cluster.Status()
			w.Header().Set(adminapi.HeaderBackupNode, strconv.Itoa(st.Node))
			w.Header().Set(adminapi.HeaderBackupRole, st.Role)
			w.Header().Set(adminapi.HeaderBackupApplied, strconv.FormatUint(st.Applied, 10))
			w.Header().Set(adminapi.HeaderBackupLeader, st.Leader)
		}
		n, err := c.store.Backup(w)
		if err != nil {
			// Headers are gone once bytes are: a short body tells the
			// client (which checks the file it wrote).
			c.log.Errorf("action: admin | result: fail | operacion: backup | bytes: %d | error: %s", n, logformat.Value(err.Error()))
			return
		}
		c.log.Infof("action: admin | result: success | operacion: backup | bytes: %d", n)
	})
}

func (c *Central) needCluster(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.cluster == nil {
			writeJSON(w, http.StatusNotFound, adminapi.Error{Error: "this central is not a cluster (CLUSTER_NODES)"})
			return
		}
		h(w, r)
	}
}

// NewRound ends the round, which must be over (drawn, and every agency's
// winners delivered: store.ErrRoundOpen otherwise), archives it and begins
// the next with agencies; it returns the new round's start. A cluster does
// it through the log (every replica at the same entry). Hellos meanwhile
// are answered unavailable; agencies that connect after it take part in
// the new round.
func (c *Central) NewRound(ctx context.Context, agencies int) (time.Time, error) {
	c.roundMu.Lock()
	defer c.roundMu.Unlock()
	c.switching.Store(true)
	defer c.switching.Store(false)
	var r store.Round
	var err error
	if c.cluster != nil {
		if err = c.cluster.NewRound(agencies); err == nil {
			r, err = c.store.Round()
		}
	} else {
		r, err = c.local.next(agencies)
	}
	if err != nil {
		return time.Time{}, err
	}
	c.installRound(ctx, r)
	c.log.Infof("action: nueva_ronda | result: success | ronda: %s | agencias: %d", r.Started.UTC().Format(time.RFC3339Nano), r.AgencyCount(agencies))
	return r.Started, nil
}
