// Package agency is a betting agency ("agencia de quiniela"): it sends its
// bets to the central exactly once, resuming after any failure, then asks
// for its winners; with no bets it runs the course's echo loop instead.
// cmd/agency is its command; the load generator (scripts/bench -mode swarm)
// runs thousands of them in one process.
package agency

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"sync/atomic"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

// Agency sends its bets to the central exactly once, then asks for its
// winners; with no bets it runs the course's echo loop instead.
type Agency struct {
	opts Options
	log  logformat.Logger
	bets Bets // where the bets come from; nil in echo mode
	echo bool // no bets: the course's echo loop (exercises 1 to 4)

	// addrs are the central's addresses (a cluster's nodes); cur is the one
	// sessions go to: moved to the leader a follower names, or to the next
	// when one fails.
	addrs []string
	cur   int

	round    uint64   // the round of the first welcome; 0 before it
	winners  []string // set once the central sent them
	received bool     // it has its winners (none, maybe) and confirmed them
	// own is what the winners must be: the documents of this agency's valid
	// bets that win (lottery.HasWon), counted on the last full pass over
	// its bets. The central's draw is the same function over the same bets,
	// so an honest central answers exactly these; nil before a full pass.
	own     map[string]int
	retries atomic.Int64 // reconnections so far (read by load generators while it runs)
}

// errPermanent marks errors that a reconnect cannot fix.
var errPermanent = errors.New("not retryable")

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, errPermanent} }

func permanent(err error) error           { return permanentError{err} }
func permanentf(f string, a ...any) error { return permanent(fmt.Errorf(f, a...)) }
func isPermanent(err error) bool          { return errors.Is(err, errPermanent) }

// Run does the agency's work: the echo loop when it has no bets, else it
// sends the bets and gets the winners, reconnecting after a broken
// connection or a central restart. It returns ctx.Err() when stopped.
func (a *Agency) Run(ctx context.Context) error {
	if a.echo {
		return a.echoLoop(ctx)
	}
	return a.retry(ctx, func() (bool, error) { return a.session(ctx) })
}

// conn is one connection to the central with its protocol reader.
type conn struct {
	net.Conn
	r   *protocol.Reader
	buf []byte
}

func (c *conn) send(m protocol.Message) error {
	var err error
	if c.buf, err = protocol.Append(c.buf[:0], m); err != nil {
		return permanent(err)
	}
	_, err = c.Write(c.buf)
	return err
}

// recv reads the next message within d; an Error reply is returned as error,
// permanent unless its code is retryable.
func (c *conn) recv(d time.Duration) (protocol.Message, error) {
	c.SetReadDeadline(time.Now().Add(d))
	m, err := c.r.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("central closed the connection: %w", io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, err
	}
	if e, ok := m.(*protocol.Error); ok {
		if e.Code.Retryable() {
			return nil, fmt.Errorf("central: %w", e)
		}
		return nil, permanent(fmt.Errorf("central: %w", e))
	}
	return m, nil
}

// receive reads the next message within d and requires it to be a T.
func receive[T protocol.Message](c *conn, d time.Duration) (T, error) {
	var zero T
	m, err := c.recv(d)
	if err != nil {
		return zero, err
	}
	t, ok := m.(T)
	if !ok {
		return zero, permanentf("central sent %s out of order", m.Kind())
	}
	return t, nil
}

// session runs one connection from hello to winners. progress reports
// whether the central stored anything new (bets, the finish): a Welcome
// alone is not progress.
func (a *Agency) session(ctx context.Context) (progress bool, err error) {
	nc, err := a.dialSession(ctx)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() }) // SIGTERM unblocks any read or write
	defer func() {
		stop()
		if nc.Close() == nil || ctx.Err() != nil {
			a.log.Infof("action: close_connection | result: success | direccion: %s", logformat.Value(a.addr()))
		}
	}()
	c := &conn{Conn: nc, r: protocol.NewReader(nc, protocol.MaxFrame)}

	asked := time.Now()
	if err := c.send(&protocol.Hello{Agency: a.opts.ID, Mode: a.bets.Mode()}); err != nil {
		return false, err
	}
	w, err := receive[*protocol.Welcome](c, a.opts.ServerTimeout)
	if err == nil && a.opts.History != nil {
		a.opts.History.Resumed(asked, time.Now(), w.Committed)
	}
	if err != nil {
		// With TLS 1.3 the central checks this agency's certificate after
		// the client's side of the handshake: a refusal arrives here.
		if remoteTLSAlert(err) {
			return false, a.tlsFailed(err)
		}
		return false, err
	}
	if a.round != 0 && w.Round != a.round {
		if a.received {
			// Our receipt was recorded and the round archived before the
			// goodbye reached us: the winners we hold (none, maybe) are final.
			a.log.Infof("action: consulta_ganadores | result: success | cant_ganadores: %d", len(a.winners))
			return true, nil
		}
		return false, permanentf("the central started a new round while this agency was reconnecting; its bets belong to the previous one")
	}
	a.round = w.Round
	if w.Finished {
		if err := a.checkFinished(w); err != nil {
			return false, err
		}
	} else if progress, err = a.sendBets(c, w); err != nil {
		return progress, err
	}
	return progress, a.askWinners(c)
}

// today is the day bets are validated as of: the UTC day the round started,
// as the central does, so that a row's validity cannot change between a run
// and its resume (a clock past midnight, another time zone).
func (a *Agency) today() time.Time { return time.Unix(0, int64(a.round)).UTC() }

// zeroDigest is a Welcome's digest when the central keeps none, which is
// only true of an agency with no bets stored: a central that holds bets and
// no digest of them is not believed (it could be anyone's).
var zeroDigest [lottery.DigestSize]byte

// tally counts bet's document in own when the bet wins.
func tally(own map[string]int, bet *lottery.Bet) {
	if lottery.HasWon(*bet) {
		own[bet.Document]++
	}
}

// checkFinished verifies a Welcome that says this agency already finished:
// only when the central holds exactly this agency's valid bets (their count
// and digest) is that true; otherwise someone finished in its name, and the
// agency fails rather than exit as if its bets were in the draw.
func (a *Agency) checkFinished(w *protocol.Welcome) error {
	src, err := a.bets.Open(a.today())
	if err != nil {
		return permanent(err)
	}
	defer src.Close()
	d := lottery.NewDigest()
	n := uint64(0)
	own := map[string]int{}
	for {
		bet, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return permanent(err)
		}
		d.Add(&bet)
		tally(own, &bet)
		n++
	}
	a.own = own
	if n != w.Committed || n > 0 && d.Sum() != w.Digest {
		return permanentf("the central says agency %d finished with %d bets stored, but %s has %d valid bets%s: they are not this agency's bets",
			a.opts.ID, w.Committed, a.bets.Name(), n, map[bool]string{true: " (same count, other bets)", false: ""}[n == w.Committed])
	}
	return nil
}

// askWinners asks for the agency's winners and waits for the draw.
func (a *Agency) askWinners(c *conn) error {
	if err := c.send(&protocol.WinnersRequest{}); err != nil {
		return err
	}
	var docs []string
	expected := 0
	for _, n := range a.own {
		expected += n
	}
	for {
		w, err := receive[*protocol.Winners](c, a.opts.WinnersTimeout)
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() {
			return permanentf("no winners within %s (winners.timeout): the draw waits for every agency", a.opts.WinnersTimeout)
		}
		if err != nil {
			return err
		}
		// Bounded by what this agency can win: a central that sends more
		// (endless frames, say) is stopped before it costs memory.
		if len(docs)+len(w.Documents) > expected {
			return permanentf("the central sent more than the %d winners agency %d's bets hold: %w", expected, a.opts.ID, errNotOurs)
		}
		docs = append(docs, w.Documents...)
		if w.Last {
			break
		}
	}
	if err := sameWinners(a.own, docs); err != nil {
		return permanentf("the central's winners for agency %d are not its winning bets (%v): %w", a.opts.ID, err, errNotOurs)
	}
	// Confirm receipt; the central records it and says goodbye. Without the
	// goodbye the session is retried, so the central always learns that this
	// agency has its winners.
	a.winners, a.received = docs, true
	if a.opts.History != nil {
		a.opts.History.Winners(docs)
	}
	if err := c.send(&protocol.Received{}); err != nil {
		return err
	}
	if _, err := receive[*protocol.Goodbye](c, a.opts.ServerTimeout); err != nil {
		return err
	}
	a.log.Infof("action: consulta_ganadores | result: success | cant_ganadores: %d", len(docs))
	return nil
}

// sameWinners checks that docs are exactly own's documents, as many times each.
func sameWinners(own map[string]int, docs []string) error {
	left := maps.Clone(own)
	for _, d := range docs {
		if left[d] == 0 {
			return fmt.Errorf("document %s is not one of its winning bets", logformat.Value(d))
		}
		left[d]--
	}
	for d, n := range left {
		if n > 0 {
			return fmt.Errorf("document %s is missing", logformat.Value(d))
		}
	}
	return nil
}
