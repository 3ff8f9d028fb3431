package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Group commit. With Options.GroupCommit, the writes of many agencies
// (Append, Finish, Delivered) share transactions: one goroutine, the
// committer, takes a write, then every other one already waiting, runs them
// all in one bbolt transaction (one fsync), and answers each only after that
// commit. It never waits for company: a lone write commits at once, and under
// load the group is what queued while the previous commit ran. A batch that
// is refused (an invalid bet, a gap, a finished agency) writes nothing before
// it is refused, so it fails alone and the rest of its group commits. Any
// other error rolls the group's transaction back; its writes are then run
// again one transaction each, so only the one that fails by itself fails.

// maxGroup bounds the Appends in one transaction.
const maxGroup = 256

// writeReq is one write for the committer: run writes it into the group's
// transaction and returns its refusal (nil, or an error for which refusal
// is true), or another error, which fails the whole transaction.
type writeReq struct {
	run  func(tx *bolt.Tx, mem *arena) error
	done chan error
}

// write runs fn in a transaction: the committer's, shared, with group
// commit; its own otherwise. It returns after the commit.
func (s *Store) write(fn func(tx *bolt.Tx, mem *arena) error) error {
	if s.appends == nil {
		return s.updateIn(fn)
	}
	req := &writeReq{run: fn, done: make(chan error, 1)}
	select {
	case s.appends <- req:
	case <-s.quit:
		return ErrClosed
	}
	return <-req.done
}

// commit runs until the store closes.
func (s *Store) commit() {
	defer close(s.committed)
	group := make([]*writeReq, 0, maxGroup)
	results := make([]error, maxGroup)
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
		s.commitGroup(group, results)
		clear(group) // the requests hold their batches: let them go
		clear(results)
	}
}

// commitGroup runs group's writes in one transaction and answers each
// (results is scratch space of the same length or more).
func (s *Store) commitGroup(group []*writeReq, results []error) {
	err := s.updateIn(func(tx *bolt.Tx, mem *arena) error {
		for i, req := range group {
			err := req.run(tx, mem)
			if err != nil && !refusal(err) {
				return err // the transaction is rolled back: see below
			}
			results[i] = err
		}
		return nil
	})
	s.groups.Add(1)
	if err != nil && len(group) > 1 {
		// One write failed the whole transaction (a damaged value of one
		// agency, say): rerun each alone, as bbolt's DB.Batch does, so
		// only the culprit fails and the others commit.
		for _, req := range group {
			req.done <- s.updateIn(req.run)
		}
	} else {
		for i, req := range group {
			if err != nil {
				req.done <- err
			} else {
				req.done <- results[i]
			}
		}
	}
}

// updateIn runs fn in a transaction of its own with an arena for the
// transaction's keys and values.
func (s *Store) updateIn(fn func(tx *bolt.Tx, mem *arena) error) error {
	var mem arena
	defer mem.release()
	return s.update(func(tx *bolt.Tx) error { return fn(tx, &mem) })
}

// refusal reports whether appendTx refused a batch before writing any of it.
func refusal(err error) bool {
	var be *BetError
	return errors.As(err, &be) || errors.Is(err, ErrGap) || errors.Is(err, ErrFinished) || errors.Is(err, ErrDrawDone)
}

// Groups returns how many group transactions committed so far (with
// GroupCommit), for figures.
func (s *Store) Groups() uint64 { return s.groups.Load() }
