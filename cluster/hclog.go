package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/loteria-nacional/tp0/logformat"
)

// newHCLog returns an hclog logger for raft that writes through the
// project's logger in its line format: `action: raft | result: R | nivel: L
// | msg: M | key: value …`. Raft's routine messages (an election, a
// heartbeat timeout, a peer not yet up) are warnings, not failures: only
// its errors are `result: fail`.
func newHCLog(log logformat.Logger, node int) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      hclog.Info,
		JSONFormat: true,
		Output:     &hclogWriter{log: log, node: node},
	})
}

type hclogWriter struct {
	log  logformat.Logger
	node int
}

// Write takes one JSON line of hclog's and logs it.
func (w *hclogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		w.line(line)
	}
	return len(p), nil
}

func (w *hclogWriter) line(line []byte) {
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil {
		w.log.Warningf("action: raft | result: in_progress | node: %d | msg: %s", w.node, logformat.Value(string(line)))
		return
	}
	level, _ := rec["@level"].(string)
	msg, _ := rec["@message"].(string)
	var b strings.Builder
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " | %s: %s", logformat.Value(strings.ReplaceAll(k, "-", "_")), logformat.Value(fmt.Sprint(rec[k])))
	}
	// A peer that is down is routine for a cluster: raft retries it with
	// backoff and says so at error level, once per try. It is a warning here.
	if level == "error" && routine(msg) {
		level = "warn"
	}
	result := "in_progress"
	if level == "error" {
		result = "fail"
	}
	format := "action: raft | result: %s | node: %d | nivel: %s | msg: %s%s"
	args := []any{result, w.node, level, logformat.Value(msg), b.String()}
	switch {
	case level == "error":
		w.log.Errorf(format, args...)
	case level == "warn":
		w.log.Warningf(format, args...)
	case slices.Contains([]string{"debug", "trace"}, level):
		w.log.Debugf(format, args...)
	default:
		w.log.Infof(format, args...)
	}
}

// routineErrors are raft's error messages about a peer it cannot reach yet.
var routineErrors = []string{"failed to heartbeat to", "failed to appendEntries to", "failed to make requestVote RPC",
	"failed to contact", "failed to decode incoming command", "failed to pipeline appendEntries"}

func routine(msg string) bool {
	for _, r := range routineErrors {
		if strings.HasPrefix(msg, r) {
			return true
		}
	}
	return false
}
