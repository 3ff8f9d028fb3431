package central

import (
	"errors"
	"fmt"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// A session's batches: each is stored (or, on a replica, handed to the log:
// pipeline.go) and answered with an Ack, or refused with an error code.

// storeErrors maps the store's refusals of a batch to error codes; any other
// store error is internal.
var storeErrors = []struct {
	err  error
	code protocol.Code
}{
	{store.ErrGap, protocol.CodeGap},
	{store.ErrFinished, protocol.CodeFinished},
	{store.ErrDrawDone, protocol.CodeFinished},
}

func batchError(err error) *protocol.Error {
	var be *store.BetError
	if errors.As(err, &be) {
		return &protocol.Error{Code: protocol.CodeInvalidBet, Index: be.Index, Message: be.Err.Error()}
	}
	for _, e := range storeErrors {
		if errors.Is(err, e.err) {
			return protocol.NewError(e.code, "%v", err)
		}
	}
	return protocol.NewError(protocol.CodeInternal, "storing the batch: %v", err)
}

// batch stores m; its buffer goes back to the reader's pool once the
// store (or, pipelined, the log's encoding) is done with it.
func (s *session) batch(m *protocol.BatchFrame) error {
	defer m.Release()
	n := m.Len()
	if m.Agency != s.agency {
		return s.fail("apuesta_recibida", protocol.NewError(protocol.CodeUnknownAgency,
			"batch for agency %d on agency %d's session", m.Agency, s.agency), fmt.Sprintf("cantidad: %d", n))
	}
	if s.pipelined() {
		return s.submit(m)
	}
	if f := s.c.opts.Faults; f != nil && f.AckWithoutCommit > 0 && s.c.faultCount.Add(1)%int64(f.AckWithoutCommit) == 0 {
		committed, _, _ := s.c.store.Committed(s.agency)
		if m.First == committed { // a batch that would store: acked, and dropped
			if err := s.send(&protocol.Ack{First: m.First, Stored: n, Committed: m.First + uint64(n)}); err != nil {
				return errEnd
			}
			return nil
		}
	}
	start := time.Now()
	receipt, err := s.c.store.Append(s.agency, m.First, m)
	return s.answer(m.First, n, m, start, receipt, err)
}

// answer tells the agency what became of its batch of n bets from first
// (bets: the batch, for the per-bet lines; nil when pipelined).
func (s *session) answer(first uint64, n int, bets lottery.Bets, start time.Time, receipt store.Receipt, err error) error {
	s.c.metrics.observeCommit(start, receipt.Stored, n, err)
	if err != nil {
		s.c.checkDamage(err)
		return s.fail("apuesta_recibida", batchError(err), fmt.Sprintf("cantidad: %d", n))
	}
	// cantidad counts what this batch stored; a retried batch's bets that
	// were stored before are counted apart.
	if again := n - receipt.Stored; again > 0 {
		s.c.log.Infof("action: apuesta_recibida | result: success | cantidad: %d | repetidas: %d", receipt.Stored, again)
	} else {
		s.c.log.Infof("action: apuesta_recibida | result: success | cantidad: %d", receipt.Stored)
	}
	level := logging.DEBUG
	if s.mode == protocol.ModeSingle {
		level = logging.INFO
	}
	if s.c.log.IsEnabledFor(level) && bets != nil {
		bets.Each(func(i int, b *lottery.Bet) error {
			if i < n-receipt.Stored {
				return nil
			}
			if level == logging.INFO {
				s.c.log.Infof("action: apuesta_almacenada | result: success | dni: %s | numero: %d", b.Document, b.Number)
			} else {
				s.c.log.Debugf("action: apuesta_almacenada | result: success | dni: %s | numero: %d", b.Document, b.Number)
			}
			return nil
		})
	}
	if err := s.send(&protocol.Ack{First: first, Stored: receipt.Stored, Committed: receipt.Committed}); err != nil {
		return errEnd
	}
	return nil
}
