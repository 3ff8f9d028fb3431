package central

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// A replica's session pipelines its agency's batches: each goes to the
// cluster's log as soon as it is read (Replica.AppendAsync, in the order
// the agency sent them), and the session reads the next while a quorum
// commits the first; one goroutine waits for the outcomes, in order, and
// acknowledges each as one central would. A commit through raft takes a few
// milliseconds (two fsyncs on two machines and a round trip), so answering
// one batch at a time would leave an agency's window of batches idle. What
// follows the batches (a finish) waits until every one was answered, and
// so does the session's end.

// maxPipelined bounds the batches of one session in flight.
const maxPipelined = 16

type pipeline struct {
	s       *session
	pending chan inflight
	wg      sync.WaitGroup // batches submitted and not yet answered
	done    chan struct{}
	failed  atomic.Bool // an answer ended the session
}

type inflight struct {
	first uint64
	n     int
	start time.Time
	wait  func() (store.Receipt, error)
}

// pipelined reports whether the session pipelines its batches: a replica's
// session of a CSV agency, unless every stored bet is logged (DEBUG).
func (s *session) pipelined() bool {
	return s.c.cluster != nil && s.mode == protocol.ModeCSV && !s.c.log.IsEnabledFor(logging.DEBUG)
}

// submit hands m to the log and to the pipeline's acknowledgements; it
// blocks while maxPipelined batches are in flight.
func (s *session) submit(m *protocol.BatchFrame) error {
	if s.pipe == nil {
		s.pipe = &pipeline{s: s, pending: make(chan inflight, maxPipelined), done: make(chan struct{})}
		go s.pipe.run()
	}
	if s.pipe.failed.Load() {
		return errEnd
	}
	p := inflight{first: m.First, n: m.Len(), start: time.Now(), wait: s.c.cluster.AppendAsync(s.agency, m.First, m)}
	s.pipe.wg.Add(1)
	s.pipe.pending <- p
	return nil
}

// run answers the batches in flight, in order. After an answer that ends
// the session, the rest are only waited for, and the session's read is cut.
func (pl *pipeline) run() {
	defer close(pl.done)
	for p := range pl.pending {
		receipt, err := p.wait()
		if !pl.failed.Load() && pl.s.answer(p.first, p.n, nil, p.start, receipt, err) != nil {
			pl.failed.Store(true)
			pl.s.raw.SetReadDeadline(time.Unix(1, 0))
		}
		pl.wg.Done()
	}
}

// drain waits until every batch in flight was answered; it reports false
// when an answer ended the session.
func (pl *pipeline) drain() bool {
	pl.wg.Wait()
	return !pl.failed.Load()
}

// close answers what is in flight and stops the pipeline.
func (pl *pipeline) close() {
	close(pl.pending)
	<-pl.done
}
