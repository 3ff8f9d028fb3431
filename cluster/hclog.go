package cluster

import (
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/logformat"
)

// raftLog is raft's logger (an hclog.Logger) writing through the project's
// logger in its line format: `action: raft | result: R | nodo: N | nivel: L
// | msg: M | key: value …`, every value escaped (logformat.Value). Its
// levels follow the project logger's (LOGGING_LEVEL): raft's DEBUG and
// TRACE lines are DEBUG lines, and a line below the logger's level is
// neither formatted nor forwarded. Raft's routine messages (an election, a
// peer not yet up) are warnings, not failures: only its errors are
// `result: fail`. Values raft formats lazily (hclog.Fmt) are formatted
// here, so no format verb reaches a line.
type raftLog struct {
	log     logformat.Logger
	node    int
	name    string
	implied []any
}

var _ hclog.Logger = (*raftLog)(nil)

func newRaftLog(l logformat.Logger, node int) *raftLog {
	return &raftLog{log: l, node: node, name: "raft"}
}

// projectLevel is the project's level for an hclog level.
func projectLevel(l hclog.Level) logging.Level {
	switch l {
	case hclog.Error:
		return logging.ERROR
	case hclog.Warn:
		return logging.WARNING
	case hclog.Info:
		return logging.INFO
	}
	return logging.DEBUG
}

func (r *raftLog) Log(level hclog.Level, msg string, args ...any) {
	// A peer that is down is routine for a cluster: raft retries it with
	// backoff and says so at error level, once per try. It is a warning here.
	if level == hclog.Error && routine(msg) {
		level = hclog.Warn
	}
	pl := projectLevel(level)
	if !r.log.IsEnabledFor(pl) {
		return
	}
	var b strings.Builder
	all := append(append([]any{}, r.implied...), args...)
	for i := 0; i+1 < len(all); i += 2 {
		k := strings.ReplaceAll(fmt.Sprint(all[i]), "-", "_")
		fmt.Fprintf(&b, " | %s: %s", logformat.Value(k), logformat.Value(valueText(all[i+1])))
	}
	result, nivel := "in_progress", strings.ToLower(level.String())
	if level == hclog.Error {
		result = "fail"
	}
	format := "action: raft | result: %s | nodo: %d | nivel: %s | msg: %s%s"
	a := []any{result, r.node, nivel, logformat.Value(msg), b.String()}
	switch pl {
	case logging.ERROR:
		r.log.Errorf(format, a...)
	case logging.WARNING:
		r.log.Warningf(format, a...)
	case logging.INFO:
		r.log.Infof(format, a...)
	default:
		r.log.Debugf(format, a...)
	}
}

// valueText is a value as text: an error's message, hclog.Fmt's formatted.
func valueText(v any) string {
	switch v := v.(type) {
	case error:
		return v.Error()
	case hclog.Format:
		if len(v) > 0 {
			if format, ok := v[0].(string); ok {
				return fmt.Sprintf(format, v[1:]...)
			}
		}
	}
	return fmt.Sprint(v)
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

func (r *raftLog) Trace(msg string, args ...any) { r.Log(hclog.Trace, msg, args...) }
func (r *raftLog) Debug(msg string, args ...any) { r.Log(hclog.Debug, msg, args...) }
func (r *raftLog) Info(msg string, args ...any)  { r.Log(hclog.Info, msg, args...) }
func (r *raftLog) Warn(msg string, args ...any)  { r.Log(hclog.Warn, msg, args...) }
func (r *raftLog) Error(msg string, args ...any) { r.Log(hclog.Error, msg, args...) }

func (r *raftLog) IsTrace() bool { return r.log.IsEnabledFor(logging.DEBUG) }
func (r *raftLog) IsDebug() bool { return r.log.IsEnabledFor(logging.DEBUG) }
func (r *raftLog) IsInfo() bool  { return r.log.IsEnabledFor(logging.INFO) }
func (r *raftLog) IsWarn() bool  { return r.log.IsEnabledFor(logging.WARNING) }
func (r *raftLog) IsError() bool { return r.log.IsEnabledFor(logging.ERROR) }

func (r *raftLog) ImpliedArgs() []any { return r.implied }

func (r *raftLog) With(args ...any) hclog.Logger {
	c := *r
	c.implied = append(append([]any{}, r.implied...), args...)
	return &c
}

func (r *raftLog) Name() string { return r.name }

func (r *raftLog) Named(name string) hclog.Logger {
	c := *r
	c.name = r.name + "." + name
	return &c
}

func (r *raftLog) ResetNamed(name string) hclog.Logger {
	c := *r
	c.name = name
	return &c
}

// SetLevel does nothing: the project logger's level decides.
func (r *raftLog) SetLevel(hclog.Level) {}

func (r *raftLog) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if r.log.IsEnabledFor(projectLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (r *raftLog) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(r.StandardWriter(opts), "", 0)
}

// StandardWriter writes each line as an INFO message.
func (r *raftLog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return lineWriter{r} }

type lineWriter struct{ r *raftLog }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line != "" {
			w.r.Info(line)
		}
	}
	return len(p), nil
}
