// Package swarm runs many real agencies (the agency package's own code) as
// goroutines of one process, each with generated bets, against a central:
// the load generator of scripts/bench -mode swarm and of the storm tests.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loteria-nacional/tp0/agency"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
)

// Config says what to run.
type Config struct {
	Addr     string // the central, host:port
	Agencies int    // agencies 1..Agencies
	Bets     int    // bets per agency
	Window   int    // batches in flight per agency (batch.window)
	// Retry budget per agency: long enough for a central restart.
	RetryTimeout time.Duration
	// LastAck, when set, is kept at the unix ns of the last bet
	// acknowledged anywhere, while the run goes on (failover figures).
	LastAck *atomic.Int64
}

// Result is what a run did.
type Result struct {
	Elapsed  time.Duration    // from the start to the last agency holding its winners
	LastAck  time.Time        // the last bet acknowledged, anywhere
	LastDone time.Time        // the last agency holding its winners
	Winners  map[int][]string // per agency, as the central answered
	Retries  int              // reconnections, all agencies
	// PeakRetryRate is the most reconnections seen in one 100 ms window, per second.
	PeakRetryRate float64
}

// Number is the number agency's bet i plays: spread by a hash, so about one
// bet in 10,000 wins, at no agency in particular.
func Number(agency, i int) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d/%d", agency, i)
	return int(h.Sum32() % (lottery.MaxNumber + 1))
}

// Bet is agency's bet i.
func Bet(agency, i int) lottery.Bet {
	return lottery.Bet{Agency: agency, FirstName: "Agente", LastName: fmt.Sprintf("Enjambre %d", agency),
		Document: fmt.Sprintf("%d", 10000000+i), Birthdate: lottery.Date{Year: 1950 + i%50, Month: time.Month(1 + i%12), Day: 1 + i%28},
		Number: Number(agency, i)}
}

// Expected returns each agency's number of winning bets.
func Expected(agencies, bets int) map[int]int {
	out := map[int]int{}
	for a := 1; a <= agencies; a++ {
		for i := 0; i < bets; i++ {
			if Number(a, i) == lottery.WinnerNumber {
				out[a]++
			}
		}
	}
	return out
}

// generated is one agency's generated bets (agency.Bets).
type generated struct {
	agency, n int
	lastAck   *atomic.Int64 // unix ns of the last ack, shared
}

func (g *generated) Mode() protocol.Mode { return protocol.ModeCSV }
func (g *generated) Name() string        { return fmt.Sprintf("generated bets of agency %d", g.agency) }
func (g *generated) Open(time.Time) (agency.Source, error) {
	return &source{g: g}, nil
}
func (g *generated) Acked(uint64, int, uint64, float64) {
	storeMax(g.lastAck, time.Now().UnixNano())
}

// storeMax raises v to n unless it is already larger.
func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

type source struct {
	g *generated
	i int
}

func (s *source) Next() (lottery.Bet, error) {
	if s.i >= s.g.n {
		return lottery.Bet{}, io.EOF
	}
	s.i++
	return Bet(s.g.agency, s.i-1), nil
}
func (s *source) Progress() float64 { return float64(s.i) / float64(max(s.g.n, 1)) }
func (s *source) Discarded() int    { return 0 }
func (s *source) Err() error        { return nil }
func (s *source) Close() error      { return nil }

// Run runs the swarm until every agency holds its winners or one fails.
func Run(ctx context.Context, cfg Config) (Result, error) {
	lastAck := cfg.LastAck
	if lastAck == nil {
		lastAck = new(atomic.Int64)
	}
	agencies := make([]*agency.Agency, cfg.Agencies+1)
	for id := 1; id <= cfg.Agencies; id++ {
		// Thousands of agencies: no logs (the options' default).
		opts := agency.NewOptions()
		opts.ID, opts.ServerAddress, opts.ServerTimeout, opts.WinnersTimeout = id, cfg.Addr, time.Minute, time.Hour
		opts.BatchWindow, opts.Attempts, opts.RetryTimeout, opts.MaxBackoff = max(cfg.Window, 1), 1<<20, cfg.RetryTimeout, 5*time.Second
		a, err := agency.NewWithBets(opts, &generated{agency: id, n: cfg.Bets, lastAck: lastAck})
		if err != nil {
			return Result{}, err
		}
		agencies[id] = a
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := Result{Winners: map[int][]string{}}
	// Sample reconnections to find the peak rate.
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		prev := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := 0
			for _, a := range agencies[1:] {
				n += a.Retries()
			}
			res.PeakRetryRate = max(res.PeakRetryRate, float64(n-prev)*10)
			prev = n
		}
	}()
	start := time.Now()
	errs := make([]error, cfg.Agencies+1)
	var wg sync.WaitGroup
	var lastDone atomic.Int64
	for id := 1; id <= cfg.Agencies; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[id] = agencies[id].Run(ctx); errs[id] != nil {
				cancel() // one failure fails the run: stop the others
				return
			}
			storeMax(&lastDone, time.Now().UnixNano())
		}()
	}
	wg.Wait()
	cancel()
	sampling.Wait()
	res.Elapsed = time.Since(start)
	res.LastAck, res.LastDone = time.Unix(0, lastAck.Load()), time.Unix(0, lastDone.Load())
	var failed []error
	for id := 1; id <= cfg.Agencies; id++ {
		res.Retries += agencies[id].Retries()
		res.Winners[id] = agencies[id].Winners()
		if errs[id] != nil && !errors.Is(errs[id], context.Canceled) {
			failed = append(failed, fmt.Errorf("agency %d: %w", id, errs[id]))
		}
	}
	if len(failed) > 0 {
		return res, errors.Join(failed...)
	}
	return res, nil
}
