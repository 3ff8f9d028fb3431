package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Group commit. With Options.GroupCommit, Append calls from many agencies
// share transactions: one goroutine, the committer, takes an Append, then
// every other one already waiting, runs them all in one bbolt transaction
// (one fsync), and answers each only after that commit. It never waits for
// company: a lone Append commits at once, and under load the group is what
// queued while the previous commit ran. A batch that is refused (an invalid
// bet, a gap, a finished agency) writes nothing before it is refused, so it
// fails alone and the rest of its group commits.

// maxGroup bounds the Appends in one transaction.
const maxGroup = 256

type appendReq struct {
	agency int
	first  uint64
	bets   []lottery.Bet
	done   chan appendRes
}

type appendRes struct {
	receipt Receipt
	err     error
}

// appendGrouped hands the Append to the committer and waits for its commit.
func (s *Store) appendGrouped(agency int, first uint64, bets []lottery.Bet) (Receipt, error) {
	req := &appendReq{agency: agency, first: first, bets: bets, done: make(chan appendRes, 1)}
	select {
	case s.appends <- req:
	case <-s.quit:
		return Receipt{}, ErrClosed
	}
	res := <-req.done
	return res.receipt, res.err
}

// commit runs until the store closes.
func (s *Store) commit() {
	defer close(s.committed)
	group := make([]*appendReq, 0, maxGroup)
	results := make([]appendRes, maxGroup)
	for {
		select {
		case req := <-s.appends:
			group = append(group[:0], req)
		case <-s.quit:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case req := <-s.appends:
				group = append(group, req)
			default:
				break more
			}
		}
		err := s.update(func(tx *bolt.Tx) error {
			mem := &arena{}
			for i, req := range group {
				receipt, err := s.appendTx(tx, mem, req.agency, req.first, req.bets)
				if err != nil && !refusal(err) {
					return err // the transaction fails: every Append in it does
				}
				results[i] = appendRes{receipt, err}
			}
			return nil
		})
		s.groups.Add(1)
		for i, req := range group {
			if err != nil {
				req.done <- appendRes{err: err}
			} else {
				req.done <- results[i]
			}
		}
	}
}

// refusal reports whether appendTx refused a batch before writing any of it.
func refusal(err error) bool {
	var be *BetError
	return errors.As(err, &be) || errors.Is(err, ErrGap) || errors.Is(err, ErrFinished) || errors.Is(err, ErrDrawDone)
}

// Groups returns how many group transactions committed so far (with
// GroupCommit), for figures.
func (s *Store) Groups() uint64 { return s.groups.Load() }
