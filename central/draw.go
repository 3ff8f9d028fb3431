package central

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// barrier is the draw barrier: it counts the agencies that finished, lets
// the one that completes the set start the draw, and releases everyone
// waiting for winners once the draw's result is stored. The draw runs once.
type barrier struct {
	agencies int

	mu       sync.Mutex
	finished map[int]bool // agencies that finished sending (durable in the store)
	started  bool         // the draw started; it runs once
	drawn    chan struct{}
	winners  map[int][]string // per agency, valid once drawn is closed
}

func newBarrier(agencies int, finished map[int]bool, winners map[int][]string) *barrier {
	b := &barrier{agencies: agencies, finished: map[int]bool{}, drawn: make(chan struct{})}
	for a := range finished {
		if a >= 1 && a <= agencies {
			b.finished[a] = true
		}
	}
	if winners != nil {
		b.started, b.winners = true, winners
		close(b.drawn)
	}
	return b
}

// finish records agency's finish. It returns how many agencies have
// finished, and start = true to exactly one caller: the one that completed
// the set, which then runs the draw.
func (b *barrier) finish(agency int) (n int, start bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished[agency] = true
	return len(b.finished), b.claim()
}

// resume returns true once when every agency had finished before a restart
// but the draw had not been stored.
func (b *barrier) resume() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.claim()
}

func (b *barrier) claim() bool {
	if len(b.finished) < b.agencies || b.started {
		return false
	}
	b.started = true
	return true
}

// release publishes the draw's result.
func (b *barrier) release(winners map[int][]string) {
	b.mu.Lock()
	b.winners = winners
	b.mu.Unlock()
	close(b.drawn)
}

// wait waits for the draw and returns agency's winners; it gives up when
// ctx ends (shutdown) or gone is closed (the agency left).
func (b *barrier) wait(ctx context.Context, gone <-chan struct{}, agency int) ([]string, error) {
	select {
	case <-b.drawn:
	case <-ctx.Done():
		return nil, protocol.NewError(protocol.CodeUnavailable, "central shutting down before the draw")
	case <-gone:
		return nil, errGone
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.winners[agency], nil
}

var errGone = errors.New("agency closed the connection while waiting for the draw")

// Draw retries back off from drawRetryMin, doubling up to drawRetryMax.
const (
	drawRetryMin = 100 * time.Millisecond
	drawRetryMax = 10 * time.Second
)

// startDraw runs the draw in its own goroutine, so that the last agency's
// finish is acknowledged without waiting for the scan. A failed draw (an
// I/O error reading or storing) is retried with backoff until it is stored
// or the central shuts down: it is idempotent, its result is stored once,
// and those waiting for winners keep waiting meanwhile.
func (c *Central) startDraw(ctx context.Context) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		wait := drawRetryMin
		for attempt := 1; ; attempt++ {
			winners, err := c.draw(ctx)
			if err == nil {
				if d := c.opts.WinnersDelay; d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
					}
					t.Stop()
				}
				c.barrier().release(winners)
				return
			}
			if ctx.Err() != nil {
				return // shutdown: the next start resumes the draw
			}
			if errors.Is(err, store.ErrDamaged) {
				c.checkDamage(err) // no retry can read a damaged file
				return
			}
			c.log.Errorf("action: sorteo | result: fail | intento: %d | espera: %s | error: %s", attempt, wait, logformat.Value(err.Error()))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
			wait = min(wait*2, drawRetryMax)
		}
	}()
}

// draw verifies the whole store (every batch held to its checksum, every
// agency's count and digest to its rows: a damaged store never produces a
// winner list), draws over its rows with lottery.HasWon and stores the
// result. A replica reads the result instead: the entry of the last finish
// ran the draw on every replica.
func (c *Central) draw(ctx context.Context) (map[int][]string, error) {
	if c.cluster != nil {
		return c.replicatedDraw()
	}
	start := time.Now()
	agencies := c.barrier().agencies
	rep, err := c.draws.Verify()
	if err != nil {
		return nil, err
	}
	winners := make(map[int][]string, agencies)
	total := 0
	for a := 1; a <= agencies; a++ {
		winners[a] = append([]string{}, rep.Winners[a]...)
		total += len(winners[a])
	}
	scanned := rep.Bets
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := c.draws.SaveDraw(c.opts.Now(), agencies, winners); err != nil {
		return nil, err
	}
	c.recordRound()
	c.metrics.drawSeconds.Set(time.Since(start).Seconds())
	c.log.Infof("action: sorteo | result: success | ganadores: %d | apuestas: %d | duracion: %s",
		total, scanned, time.Since(start).Round(time.Millisecond))
	return winners, nil
}

// errNotDrawn means the replicated round has not been drawn yet.
var errNotDrawn = errors.New("the last finish is applied but the round is not drawn")

// replicatedDraw reads the draw the log ran, once this replica's store
// passed Verify: a damaged replica stops (its store is rebuilt at its next
// start) and another leads, instead of announcing the winners of its rows.
func (c *Central) replicatedDraw() (map[int][]string, error) {
	r, err := c.store.Round()
	if err != nil {
		return nil, err
	}
	if !r.Drawn {
		return nil, errNotDrawn
	}
	if _, err := c.cluster.Verify(); err != nil {
		return nil, err
	}
	c.recordRound()
	total := 0
	for _, w := range r.Winners {
		total += len(w)
	}
	c.log.Infof("action: sorteo | result: success | ganadores: %d | apuestas: %d | sorteo: %s", total, r.Bets, r.DrawTime.UTC().Format(time.RFC3339Nano))
	return r.Winners, nil
}
