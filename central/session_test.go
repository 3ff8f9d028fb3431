package central

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// brokenStore fails every Append with an error that names the operator's
// file, as a damaged store does.
type brokenStore struct{ betStore }

func (brokenStore) Append(int, uint64, lottery.Bets) (store.Receipt, error) {
	return store.Receipt{}, fmt.Errorf("open store /srv/secret/bets.db: %w: bucket digests key 000001", store.ErrInvalidFile)
}

// replies runs one session over data and returns what the central wrote.
func replies(t *testing.T, c *Central, data []byte) []protocol.Message {
	t.Helper()
	conn := &memConn{in: bytes.NewReader(data)}
	c.serveConn(context.Background(), conn, c.slots.take())
	var out []protocol.Message
	r := protocol.NewReader(bytes.NewReader(conn.out.Bytes()), 0)
	for {
		m, err := r.Next()
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

// An internal error reaches the agency as a fixed message; its detail (a
// path, a bucket and key) is only in the central's log.
func TestSession_InternalErrorIsNotSentToThePeer(t *testing.T) {
	t.Parallel()
	c := newTestCentral(t, 1)
	logs := &testkit.Buffer{}
	c.log = logformat.New(logs, logging.INFO, "test")
	c.store = brokenStore{c.store}
	got := replies(t, c, testkit.Frames(t, &protocol.Hello{Agency: 1, Mode: protocol.ModeCSV},
		&protocol.Batch{Agency: 1, First: 0, Bets: testkit.Bets(1, 2)}))
	if len(got) != 2 {
		t.Fatalf("replies %v, want Welcome and Error", got)
	}
	e, ok := got[1].(*protocol.Error)
	if !ok || e.Code != protocol.CodeInternal || e.Message != internalMessage {
		t.Fatalf("reply %#v, want CodeInternal with the fixed message", got[1])
	}
	if !strings.Contains(logs.String(), "codigo: internal | error: internal: storing the batch: open store /srv/secret/bets.db") {
		t.Fatalf("the log lacks the detail:\n%s", logs)
	}
}
