package agency

import (
	"errors"
	"io"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

// batcher cuts a stream of bets into batches of at most max bets and
// protocol.MaxBatchFrame bytes; a bet that does not fit opens the next batch.
type batcher struct {
	src   Source
	max   int
	carry *lottery.Bet
	eof   bool
}

// fill replaces b's bets with the next batch, starting at bet first. It
// leaves b empty at the end of the stream.
func (f *batcher) fill(b *protocol.Batch, first uint64) error {
	b.First, b.Bets = first, b.Bets[:0]
	size := protocol.BatchOverhead
	for len(b.Bets) < f.max {
		var bet lottery.Bet
		if f.carry != nil {
			bet, f.carry = *f.carry, nil
		} else if f.eof {
			break
		} else {
			var err error
			if bet, err = f.src.Next(); err == io.EOF {
				f.eof = true
				break
			} else if err != nil {
				return err
			}
		}
		if bs := protocol.BetSize(&bet); size+bs > protocol.MaxBatchFrame {
			f.carry = &bet
			break
		} else {
			size += bs
		}
		b.Bets = append(b.Bets, bet)
	}
	return nil
}

// errNotOurs marks a central whose counts or digest do not match what this
// agency sent: someone else spoke for it.
var errNotOurs = errors.New("the central's record of this agency's bets does not match what it sent")

// sendBets skips the bets the central already has (checking, when the
// central keeps a digest, that they are this agency's bets), streams the
// rest with up to batch.window batches unacknowledged, and finishes.
// progress reports whether the central stored anything new.
func (a *Agency) sendBets(c *conn, w *protocol.Welcome) (progress bool, err error) {
	src, err := a.bets.Open(a.today())
	if err != nil {
		return false, permanent(err)
	}
	defer src.Close()
	// Resume by bet offset: skip the valid bets the central already has.
	// The digest runs over every bet read, in the order they are sent: at
	// the finish, over every bet the central acknowledged.
	d := lottery.NewDigest()
	own := map[string]int{}
	src = &tallied{Source: src, own: own, digest: d}
	for i := uint64(0); i < w.Committed; i++ {
		if _, err := src.Next(); err == io.EOF {
			return false, permanentf("the central has %d bets of agency %d but %s has only %d valid bets: %w", w.Committed, a.opts.ID, a.bets.Name(), i, errNotOurs)
		} else if err != nil {
			return false, permanent(err)
		}
	}
	if w.Committed > 0 && w.Digest == zeroDigest {
		return false, permanentf("the central holds %d bets for agency %d but no digest of them: it cannot show they are this agency's: %w",
			w.Committed, a.opts.ID, errNotOurs)
	}
	if w.Committed > 0 && d.Sum() != w.Digest {
		return false, permanentf("the %d bets the central holds for agency %d are not the first %d valid bets of %s (digest mismatch): %w",
			w.Committed, a.opts.ID, w.Committed, a.bets.Name(), errNotOurs)
	}
	type inflight struct {
		first    uint64
		n        int
		fraction float64   // of the input read once the batch was filled
		sent     time.Time // for the history
	}
	var (
		queue []inflight
		next  = w.Committed // index of the next bet to send
		acked = w.Committed
		batch = protocol.Batch{Agency: a.opts.ID}
		fill  = batcher{src: src, max: a.opts.BatchMaxAmount}
	)
	if h := a.opts.History; h != nil {
		// The batches still in flight when the session ends: the head's
		// refusal is the central's word on it; the others', unknown.
		defer func() {
			for i, b := range queue {
				var pe *protocol.Error
				if i == 0 && errors.As(err, &pe) && refusal(pe.Code) {
					h.Batch(b.first, b.n, b.sent, time.Now(), 0, Refused)
				} else {
					h.Batch(b.first, b.n, b.sent, time.Time{}, 0, Unknown)
				}
			}
		}()
	}
	for {
		for len(queue) < a.opts.BatchWindow {
			if err := fill.fill(&batch, next); err != nil {
				return progress, permanent(err)
			}
			if len(batch.Bets) == 0 {
				break
			}
			if err := c.send(&batch); err != nil {
				return progress, err
			}
			queue = append(queue, inflight{batch.First, len(batch.Bets), src.Progress(), time.Now()})
			next += uint64(len(batch.Bets))
		}
		if len(queue) == 0 {
			break
		}
		ack, err := receive[*protocol.Ack](c, a.opts.ServerTimeout)
		if err != nil {
			return progress, err
		}
		want := queue[0].first + uint64(queue[0].n)
		if ack.First != queue[0].first || ack.Committed != want {
			return progress, permanentf("central acknowledged agency %d's batch at %d with %d bets committed; this agency sent that batch at %d and expects %d committed: %w",
				a.opts.ID, ack.First, ack.Committed, queue[0].first, want, errNotOurs)
		}
		progress = progress || ack.Stored > 0
		if h := a.opts.History; h != nil {
			h.Batch(queue[0].first, queue[0].n, queue[0].sent, time.Now(), ack.Committed, Acked)
		}
		a.bets.Acked(queue[0].first, queue[0].n, want, queue[0].fraction)
		acked, queue = want, queue[1:]
	}
	a.log.Infof("action: apuestas_enviadas | result: success | cantidad: %d | descartadas: %d", acked, src.Discarded())
	if err := src.Err(); err != nil {
		// Finishing would let the draw run without the rows it lost.
		return progress, permanent(err)
	}
	if err := c.send(&protocol.Finish{Total: acked}); err != nil {
		return progress, err
	}
	f, err := receive[*protocol.Finished](c, a.opts.ServerTimeout)
	if err != nil {
		return progress, err
	}
	if f.Committed != acked {
		return progress, permanentf("central recorded agency %d's finish with %d bets; this agency sent %d: %w", a.opts.ID, f.Committed, acked, errNotOurs)
	}
	// The digest of the bets the central acknowledged: the agency's line of
	// the round's signed record must show it (server verify-round).
	sum := d.Sum()
	a.log.Infof("action: fin_envio | result: success | finalizadas: %d | agencias: %d | apuestas: %d | resumen: %x", f.Count, f.Agencies, acked, sum[:])
	a.own = own // the whole stream was read: these are the agency's winning bets
	return true, nil
}

// refusal reports a code the central answers a batch with for what the
// batch is (nothing of it stored): not a session that ended (not_leader,
// unavailable, replaced), which leaves its outcome unknown.
func refusal(c protocol.Code) bool {
	return c == protocol.CodeGap || c == protocol.CodeInvalidBet || c == protocol.CodeFinished || c == protocol.CodeUnknownAgency
}

// tallied counts the winning bets of the bets it yields.
type tallied struct {
	Source
	own    map[string]int
	digest *lottery.Digest // of every bet yielded
}

func (t *tallied) Next() (lottery.Bet, error) {
	bet, err := t.Source.Next()
	if err == nil {
		tally(t.own, &bet)
		t.digest.Add(&bet)
	}
	return bet, err
}
