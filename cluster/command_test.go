package cluster

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

func TestEntry_RoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 123, time.UTC)
	for _, c := range []store.Command{
		{Kind: store.CmdBegin, At: at, Agencies: 5},
		{Kind: store.CmdAppend, Agency: 3, First: 40, Bets: lottery.BetSlice(testkit.Bets(3, 7))},
		{Kind: store.CmdFinish, Agency: 2, Total: 78697, At: at},
		{Kind: store.CmdDelivered, Agency: 4, At: at},
		{Kind: store.CmdNewRound, At: at, Agencies: 7},
		{Kind: store.CmdVersion, Version: 2},
		{Kind: store.CmdCheckpoint, Summary: &store.Summary{At: 99, Bets: 1234, DrawTime: at, Agencies: map[int]store.AgencySummary{
			1: {Committed: 1000, Digest: [32]byte{1, 2, 3}, Finished: 1000, Winners: [8]byte{9}}, 7: {Committed: 234}}}},
		{Kind: store.CmdCheckpoint, Summary: &store.Summary{At: 5, Agencies: map[int]store.AgencySummary{}}},
	} {
		b, err := encode(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := got.Bets.(*protocol.BatchFrame); ok {
			got.Bets = lottery.BetSlice(f.Bets()) // read from b: compared decoded
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("kind %d: decoded %+v, want %+v", c.Kind, got, c)
		}
	}
}

// An entry this version cannot read is an error (the replica stops), never
// a command applied as something else.
func TestEntry_Malformed(t *testing.T) {
	t.Parallel()
	good, _ := encode(store.Command{Kind: store.CmdFinish, Agency: 1, Total: 2, At: time.Unix(1, 0)})
	for name, b := range map[string][]byte{
		"Empty":           nil,
		"Version":         append([]byte{9}, good[1:]...),
		"UnknownKind":     {entryVersion, 77},
		"Truncated":       good[:len(good)-1],
		"Trailing":        append(append([]byte(nil), good...), 0),
		"AppendNoBets":    {entryVersion, byte(store.CmdAppend), 0xA1},
		"AppendTail":      append(appendEntry(t), 1, 2),
		"CheckpointShort": {entryVersion, byte(store.CmdCheckpoint), 0, 1},
		"CheckpointCount": append(append([]byte{entryVersion, byte(store.CmdCheckpoint)}, make([]byte, 24)...), 0, 0, 0, 2),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decode(b); !errors.Is(err, ErrEntry) {
				t.Fatalf("decode: %v, want ErrEntry", err)
			}
		})
	}
	if _, err := encode(store.Command{Kind: 42}); !errors.Is(err, store.ErrUnknownCommand) {
		t.Fatalf("encode of an unknown kind: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []store.Command{{Kind: store.CmdBegin, At: time.Unix(5, 0), Agencies: 1}, {Kind: store.CmdAppend, Agency: 1, Bets: lottery.BetSlice(testkit.Bets(1, 2))}} {
		b, _ := encode(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decode(b)
		if err != nil {
			return
		}
		again, err := encode(c)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", c, err)
		}
		if _, err := decode(again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
	})
}

func TestParseNodes(t *testing.T) {
	t.Parallel()
	nodes, err := ParseNodes(" 1=a:1, 2=b:2 ,3=c:3")
	if err != nil || len(nodes) != 3 || nodes[2] != "b:2" {
		t.Fatalf("%v, %v", nodes, err)
	}
	if four, err := ParseNodes("1=a:1,2=b:2,3=c:3,4=d:4"); err != nil || len(four) != 4 {
		t.Fatalf("a joining node's list of four: %v, %v", four, err)
	}
	for _, bad := range []string{"", "0=a:1", "x=a:1", "1=a", "1=a:1,1=b:2,3=c:3", "1=a:1,2=a:1,3=c:3", "1:a:1"} {
		if _, err := ParseNodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseNodes("1=a:1;2=b:2;3=c:3"); err == nil || !strings.Contains(err.Error(), "separate the nodes with commas") {
		t.Errorf("semicolons: %v", err)
	}
}

// Raft's lines go through the project's logger in its format, at its
// level; a peer that is down is a warning, not a failure; other errors are
// failures; values raft formats lazily are formatted, never a format verb.
func TestRaftLog(t *testing.T) {
	t.Parallel()
	buf := &testkit.Buffer{}
	h := newRaftLog(logformat.New(buf, logging.INFO, "raft"), 2)
	h.Info("entering follower state", "follower", "node-2", "leader-address", "x|y")
	h.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", []string{"a", "b"}))
	h.Info("snapshot progress", "percent_complete", hclog.Fmt("%0.2f%%", 100.0))
	h.Error("failed to heartbeat to", "peer", "127.0.0.1:1", "error", errors.New("connection refused"))
	h.Error("failed to take snapshot", "error", "disk full")
	h.Debug("a debug line")
	h.With("id", "s1").Warn("snapshot", "size", 3)
	out := buf.String()
	for _, want := range []string{
		"INFO     action: raft | result: in_progress | nodo: 2 | nivel: info | msg: entering follower state | follower: node-2 | leader_address: x\\x7cy",
		"WARNING  action: raft | result: in_progress | nodo: 2 | nivel: warn | msg: failed to heartbeat to | peer: 127.0.0.1:1 | error: connection refused",
		"ERROR    action: raft | result: fail | nodo: 2 | nivel: error | msg: failed to take snapshot | error: disk full",
		"WARNING  action: raft | result: in_progress | nodo: 2 | nivel: warn | msg: snapshot | id: s1 | size: 3",
		"msg: initial configuration | index: 1 | servers: [a b]",
		"msg: snapshot progress | percent_complete: 100.00%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "a debug line") || h.IsDebug() || !h.IsInfo() {
		t.Errorf("a DEBUG line got through an INFO logger:\n%s", out)
	}
	if strings.Contains(out, "%") && !strings.Contains(out, "100.00%") {
		t.Errorf("a format verb reached a line:\n%s", out)
	}
}

func appendEntry(t *testing.T) []byte {
	b, err := encode(store.Command{Kind: store.CmdAppend, Agency: 1, Bets: lottery.BetSlice(testkit.Bets(1, 1))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
