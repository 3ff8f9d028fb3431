//go:build tp0testhooks

// Package testfaults turns the environment's TP0_TEST_* variables into the
// faults the end-to-end tests switch on, in the build they make (-tags
// tp0testhooks); a release build has none (off.go).
package testfaults

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loteria-nacional/tp0/agency"
	"github.com/loteria-nacional/tp0/central"
	"github.com/loteria-nacional/tp0/cluster"
	"github.com/loteria-nacional/tp0/internal/history"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/store"
)

// Cluster returns the cluster's test faults, from the environment:
//
//	TP0_TEST_FAIL_APPLY=N    applying a batch that holds entry N or a later one fails (a disk that breaks)
//	TP0_TEST_FAIL_BARRIER=1  every preparation as leader fails (a leader that cannot catch up)
//	TP0_TEST_CUT_FILE=PATH   the node ids whose network is cut, one line each, read again every 10 ms
//	TP0_TEST_DIVERGE=1       this node's store differs from the leader's at every checkpoint (agency 1's digest)
//	TP0_TEST_COMPACT=1       a snapshot every 64 entries, 16 kept behind it, raft-wal segments of 64 KiB: a log compacted soon
func Cluster(log logformat.Logger) *cluster.Hooks {
	h := &cluster.Hooks{}
	if v := os.Getenv("TP0_TEST_FAIL_APPLY"); v != "" {
		at, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			panic(fmt.Sprintf("TP0_TEST_FAIL_APPLY=%q", v))
		}
		h.Apply = func(_, last uint64) error {
			if last >= at {
				return fmt.Errorf("test fault: applying entry %d fails (TP0_TEST_FAIL_APPLY=%d): input/output error", last, at)
			}
			return nil
		}
	}
	if os.Getenv("TP0_TEST_FAIL_BARRIER") == "1" {
		h.Barrier = func() error { return errors.New("test fault: the barrier fails (TP0_TEST_FAIL_BARRIER)") }
	}
	if path := os.Getenv("TP0_TEST_CUT_FILE"); path != "" {
		h.Cut = cutFile(path)
	}
	if os.Getenv("TP0_TEST_DIVERGE") == "1" {
		h.Diverge = func(leader *store.Summary) {
			a := leader.Agencies[1]
			a.Digest[0] ^= 1
			leader.Agencies[1] = a
		}
	}
	if os.Getenv("TP0_TEST_COMPACT") == "1" {
		h.Tune = func(cfg *cluster.Config) {
			cfg.Snapshots = cluster.Snapshots{Interval: 500 * time.Millisecond, Threshold: 64, Trailing: 16}
			cfg.WALSegmentSize = 64 << 10
		}
	}
	if h.Apply == nil && h.Barrier == nil && h.Cut == nil && h.Diverge == nil && h.Tune == nil {
		return nil
	}
	log.Warningf("action: config | result: success | aviso: a test build: faults from TP0_TEST_* are on")
	return h
}

// cutFile reads the cut node ids from path, at most every 10 ms.
func cutFile(path string) func(peer int) bool {
	var mu sync.Mutex
	var read time.Time
	cut := map[int]bool{}
	self, _ := strconv.Atoi(os.Getenv("CLUSTER_NODE_ID"))
	return func(peer int) bool {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(read) > 10*time.Millisecond {
			read = time.Now()
			cut = map[int]bool{}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if id, err := strconv.Atoi(f); err == nil {
					cut[id] = true
				}
			}
		}
		return cut[self] || cut[peer]
	}
}

// Central returns the central's test faults, from the environment:
//
//	TP0_TEST_ACK_WITHOUT_COMMIT=N  every N-th batch is acked and never stored (one central)
func Central() *central.Faults {
	n, _ := strconv.Atoi(os.Getenv("TP0_TEST_ACK_WITHOUT_COMMIT"))
	if n <= 0 {
		return nil
	}
	return &central.Faults{AckWithoutCommit: n}
}

// History is the history agency id records in TP0_TEST_HISTORY, for the
// end-to-end tests' checker (none when it is unset).
func History(id int) (agency.History, error) {
	path := os.Getenv("TP0_TEST_HISTORY")
	if path == "" {
		return nil, nil
	}
	return history.Create(path, id)
}
