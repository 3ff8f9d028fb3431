package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

// Agency sends its bets to the central exactly once, then asks for its winners.
type Agency struct {
	opts   Options
	log    *logging.Logger
	single *lottery.Bet // single-bet mode when set
	echo   bool         // no bets: the course's echo loop (exercises 1 to 4)

	round        uint64 // the round of the first welcome; 0 before it
	logged       int    // last CSV line whose errors were logged
	progressStep int    // last 10% step logged
	winners      []string
}

// errPermanent marks errors that a reconnect cannot fix.
var errPermanent = errors.New("not retryable")

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, errPermanent} }

func permanent(err error) error           { return permanentError{err} }
func permanentf(f string, a ...any) error { return permanent(fmt.Errorf(f, a...)) }
func isPermanent(err error) bool          { return errors.Is(err, errPermanent) }

func (a *Agency) mode() protocol.Mode {
	if a.single != nil {
		return protocol.ModeSingle
	}
	return protocol.ModeCSV
}

// dataName says where the bets come from, for logs.
func (a *Agency) dataName() string {
	switch {
	case a.single != nil:
		return "env"
	case a.echo:
		return "none"
	}
	return a.opts.DataPath
}

// modeName names what the agency does, for the config line.
func (a *Agency) modeName() string {
	if a.echo {
		return "echo"
	}
	return a.mode().String()
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run does the agency's work: the echo loop when it has no bets, else it
// sends the bets and gets the winners, reconnecting with backoff after a
// broken connection or a server restart. It returns ctx.Err() when stopped.
func (a *Agency) Run(ctx context.Context) error {
	if a.echo {
		return a.echoLoop(ctx)
	}
	return a.retry(ctx, func() (bool, error) { return a.session(ctx) })
}

// retry runs op until it succeeds, fails permanently or ctx is done, waiting
// with exponential backoff between attempts. op reports whether it made
// progress, which resets the count of attempts and the backoff.
func (a *Agency) retry(ctx context.Context, op func() (progress bool, err error)) error {
	backoff := a.opts.Backoff
	for attempt := 0; ; {
		progress, err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if isPermanent(err) {
			return err
		}
		if progress {
			attempt, backoff = 0, a.opts.Backoff
		}
		attempt++
		if attempt > a.opts.Attempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempt-1, err)
		}
		a.log.Warningf("action: reconectar | result: in_progress | intento: %d | espera: %s | error: %s", attempt, backoff, logformat.Value(err.Error()))
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, a.opts.MaxBackoff)
	}
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
	return protocol.WriteFull(c, c.buf)
}

// recv reads the next message within d; an Error reply is returned as error.
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
		return nil, classify(e)
	}
	return m, nil
}

// classify marks the central's error replies that retrying cannot fix.
func classify(e *protocol.Error) error {
	switch e.Code {
	case protocol.CodeBusy, protocol.CodeUnavailable, protocol.CodeGap, protocol.CodeIncomplete, protocol.CodeInternal:
		return fmt.Errorf("central: %w", e)
	}
	return permanent(fmt.Errorf("central: %w", e))
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

// session runs one connection from hello to winners. progress reports whether
// the central acknowledged anything new, which resets the retry count.
func (a *Agency) session(ctx context.Context) (progress bool, err error) {
	nc, err := a.dial(ctx)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() }) // SIGTERM unblocks any read or write
	defer func() {
		stop()
		if nc.Close() == nil || ctx.Err() != nil {
			a.log.Infof("action: close_connection | result: success | address: %s", a.opts.ServerAddress)
		}
	}()
	c := &conn{Conn: nc, r: protocol.NewReader(nc, protocol.MaxFrame)}

	if err := c.send(&protocol.Hello{Agency: a.opts.ID, Mode: a.mode()}); err != nil {
		return false, err
	}
	w, err := receive[*protocol.Welcome](c, a.opts.ServerTimeout)
	if err != nil {
		return false, err
	}
	if a.round != 0 && w.Round != a.round {
		if a.winners != nil {
			// Our receipt was recorded and the round archived before the
			// goodbye reached us: the winners we hold are final.
			a.log.Infof("action: consulta_ganadores | result: success | cant_ganadores: %d", len(a.winners))
			return true, nil
		}
		return false, permanentf("the central started a new round while this agency was reconnecting; its bets belong to the previous one")
	}
	a.round = w.Round
	if !w.Finished {
		if progress, err = a.sendBets(c, w.Committed); err != nil {
			return progress, err
		}
	}
	return true, a.askWinners(c)
}

// sendBets streams the bets after the first committed ones, with up to
// BatchWindow batches unacknowledged, then finishes.
func (a *Agency) sendBets(c *conn, committed uint64) (progress bool, err error) {
	src, err := a.open()
	if err != nil {
		return false, err
	}
	defer src.Close()
	// Skip the valid bets the central already has: resume by bet offset.
	for i := uint64(0); i < committed; i++ {
		if _, err := src.Next(); err != nil {
			if err == io.EOF {
				return false, permanentf("the central has %d bets of agency %d but %s has only %d", committed, a.opts.ID, a.dataName(), i)
			}
			return false, permanent(err)
		}
	}
	type inflight struct {
		first uint64
		n     int
	}
	var (
		queue   []inflight
		next    = committed // index of the next bet to send
		acked   = committed
		carry   *lottery.Bet // a bet that did not fit the last batch opens the next
		eof     bool
		batch   = protocol.Batch{Agency: a.opts.ID}
		lastAck []lottery.Bet
	)
	for {
		for len(queue) < a.opts.BatchWindow && !eof {
			batch.First, batch.Bets = next, batch.Bets[:0]
			size := protocol.BatchOverhead
			for len(batch.Bets) < a.opts.BatchMaxAmount {
				var bet lottery.Bet
				if carry != nil {
					bet, carry = *carry, nil
				} else if bet, err = src.Next(); err == io.EOF {
					eof = true
					break
				} else if err != nil {
					return progress, permanent(err)
				}
				if bs := protocol.BetSize(&bet); size+bs > protocol.MaxBatchFrame {
					carry = &bet
					break
				} else {
					size += bs
				}
				batch.Bets = append(batch.Bets, bet)
			}
			if len(batch.Bets) == 0 {
				break
			}
			if err := c.send(&batch); err != nil {
				return progress, err
			}
			queue = append(queue, inflight{batch.First, len(batch.Bets)})
			next += uint64(len(batch.Bets))
			if a.single != nil {
				lastAck = append(lastAck[:0], batch.Bets...)
			}
		}
		if len(queue) == 0 {
			break
		}
		ack, err := receive[*protocol.Ack](c, a.opts.ServerTimeout)
		if err != nil {
			return progress, err
		}
		if ack.First != queue[0].first {
			return progress, permanentf("central acknowledged the batch at %d, expected %d", ack.First, queue[0].first)
		}
		acked, queue, progress = queue[0].first+uint64(queue[0].n), queue[1:], true
		a.logProgress(src, acked)
		if a.single != nil {
			for _, b := range lastAck {
				a.log.Infof("action: apuesta_enviada | result: success | dni: %s | numero: %d", b.Document, b.Number)
			}
		}
	}
	a.log.Infof("action: apuestas_enviadas | result: success | cantidad: %d | descartadas: %d", acked, src.Discarded())
	if err := c.send(&protocol.Finish{Total: acked}); err != nil {
		return progress, err
	}
	f, err := receive[*protocol.Finished](c, a.opts.ServerTimeout)
	if err != nil {
		return progress, err
	}
	a.log.Infof("action: fin_envio | result: success | finalizadas: %d | agencias: %d", f.Finished, f.Agencies)
	return true, nil
}

func (a *Agency) open() (source, error) {
	if a.single != nil {
		return &singleSource{bet: *a.single}, nil
	}
	src, err := openCSV(a.opts.DataPath, a.opts.ID, a.log, a.logged)
	if err != nil {
		return nil, permanent(err)
	}
	return &trackedCSV{src, a}, nil
}

// trackedCSV remembers how far invalid rows were logged across reconnects.
type trackedCSV struct {
	*csvSource
	a *Agency
}

func (t *trackedCSV) Next() (lottery.Bet, error) {
	b, err := t.csvSource.Next()
	if line, _ := t.cr.FieldPos(0); line > t.a.logged {
		t.a.logged = line
	}
	return b, err
}

// logProgress logs about every 10% of the input read.
func (a *Agency) logProgress(src source, sent uint64) {
	step := int(src.Progress() * 10)
	if step > a.progressStep && a.single == nil {
		a.progressStep = step
		a.log.Infof("action: progreso | result: in_progress | enviadas: %d | porcentaje: %d", sent, min(step*10, 100))
	}
}

// askWinners asks for the agency's winners and waits for the draw.
func (a *Agency) askWinners(c *conn) error {
	if err := c.send(&protocol.WinnersRequest{}); err != nil {
		return err
	}
	var docs []string
	for {
		w, err := receive[*protocol.Winners](c, a.opts.WinnersTimeout)
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() {
			return permanentf("no winners within %s (winners.timeout): the draw waits for every agency", a.opts.WinnersTimeout)
		}
		if err != nil {
			return err
		}
		docs = append(docs, w.Documents...)
		if w.Last {
			break
		}
	}
	// Confirm receipt; the central records it and says goodbye. Without the
	// goodbye the session is retried, so the central always learns that this
	// agency has its winners.
	a.winners = docs
	if err := c.send(&protocol.Received{}); err != nil {
		return err
	}
	if _, err := receive[*protocol.Goodbye](c, a.opts.ServerTimeout); err != nil {
		return err
	}
	a.log.Infof("action: consulta_ganadores | result: success | cant_ganadores: %d", len(docs))
	return nil
}
