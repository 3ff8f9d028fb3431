package cluster

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

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
		"Empty":        nil,
		"Version":      append([]byte{9}, good[1:]...),
		"UnknownKind":  {entryVersion, 77},
		"Truncated":    good[:len(good)-1],
		"Trailing":     append(append([]byte(nil), good...), 0),
		"AppendNoBets": {entryVersion, byte(store.CmdAppend), 0xA1},
		"AppendTail":   append(appendEntry(t), 1, 2),
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
	for _, bad := range []string{"", "1=a:1,2=b:2", "0=a:1", "x=a:1", "1=a", "1=a:1,1=b:2,3=c:3", "1=a:1,2=a:1,3=c:3", "1:a:1"} {
		if _, err := ParseNodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Raft's lines go through the project's logger in its format, at its
// level; a peer that is down is a warning, not a failure; other errors are
// failures; a change of role is told with the term raft names.
func TestRaftLog(t *testing.T) {
	t.Parallel()
	buf := &testkit.Buffer{}
	var roles []string
	h := newRaftLog(logformat.New(buf, logging.INFO, "raft"), 2, func(role string, term uint64, named bool) {
		roles = append(roles, fmt.Sprintf("%s %d %t", role, term, named))
	})
	h.Info("entering follower state", "follower", "node-2", "leader-address", "x|y")
	h.Info("entering candidate state", "node", "node-2", "term", uint64(7))
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
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "a debug line") || h.IsDebug() || !h.IsInfo() {
		t.Errorf("a DEBUG line got through an INFO logger:\n%s", out)
	}
	if fmt.Sprint(roles) != "[follower 0 false candidate 7 true]" {
		t.Errorf("roles told: %v", roles)
	}
}

func appendEntry(t *testing.T) []byte {
	b, err := encode(store.Command{Kind: store.CmdAppend, Agency: 1, Bets: lottery.BetSlice(testkit.Bets(1, 1))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
