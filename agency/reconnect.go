package agency

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
)

// Reconnecting: the retry budget, the backoff and following a cluster's
// leader.

// retry runs op until it succeeds, fails permanently or ctx is done. op
// reports whether it made progress (the central stored something new); the
// retry budget (reconnect.attempts attempts, reconnect.timeout of time)
// counts only attempts without progress, so an agency whose central keeps
// failing gives up, and one that advances never does. Waits grow
// exponentially with full jitter (a random wait up to the exponential
// bound), so agencies cut off together do not come back together.
func (a *Agency) retry(ctx context.Context, op func() (progress bool, err error)) error {
	attempt, since := 0, time.Now()
	hopped := false // the last retry went straight to a leader a follower named
	for {
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
		if a.follow(err) && !hopped {
			// A follower named the leader: a redirect, not a failure, so
			// go there at once. Once in a row: two nodes that name each
			// other during an election get the backoff in between.
			hopped = true
			a.log.Infof("action: reconectar | result: in_progress | lider: %s | espera: 0s", logformat.Value(a.addr()))
			continue
		}
		hopped = false
		if replaced(err) {
			// A newer session spoke for this agency (a second copy of it, or,
			// without TLS, anyone on the network): take the session back
			// without spending the budget, which is for a central that fails.
			// With TLS only this agency's own certificate can do that.
			a.log.Warningf("action: sesion_reemplazada | result: fail | agencia: %d | error: %s", a.opts.ID, logformat.Value(err.Error()))
			progress = true
		}
		if progress {
			attempt, since = 0, time.Now()
		}
		attempt++
		if attempt > a.opts.Attempts {
			return fmt.Errorf("gave up after %d attempts without progress: %w", attempt-1, err)
		}
		if waited := time.Since(since); waited > a.opts.RetryTimeout {
			return fmt.Errorf("gave up after %s without progress (reconnect.timeout): %w", waited.Round(time.Millisecond), err)
		}
		wait := jitter(a.opts.Backoff, a.opts.MaxBackoff, attempt)
		a.retries.Add(1)
		a.log.Warningf("action: reconectar | result: in_progress | intento: %d | espera: %s | error: %s", attempt, wait, logformat.Value(err.Error()))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// addr is the address sessions go to.
func (a *Agency) addr() string {
	if len(a.addrs) == 0 {
		a.addrs = addresses(a.opts.ServerAddress)
	}
	return a.addrs[a.cur]
}

// follow moves the next session after err: to the leader a follower of a
// cluster names (it reports true), else, with several addresses, to the
// next one.
func (a *Agency) follow(err error) (toLeader bool) {
	a.addr()
	if len(a.addrs) == 1 && !notLeader(err) {
		return false
	}
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Code == protocol.CodeNotLeader && pe.Message != "" {
		for i, ad := range a.addrs {
			if ad == pe.Message {
				a.cur = i
				return true
			}
		}
		if _, _, err := net.SplitHostPort(pe.Message); err == nil {
			a.addrs = append(a.addrs, pe.Message)
			a.cur = len(a.addrs) - 1
			return true
		}
	}
	a.cur = (a.cur + 1) % len(a.addrs)
	return false
}

// notLeader reports whether err is a follower's not_leader.
func notLeader(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == protocol.CodeNotLeader
}

// replaced reports whether err is the central's word that a newer session
// of this agency took over.
func replaced(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == protocol.CodeReplaced
}

// jitter is the wait before retry attempt (from 1): a random duration in
// [base/2, bound], bound = min(max, base × 2^(attempt-1)) ("full jitter",
// with a floor so a retry never comes at once).
func jitter(base, max time.Duration, attempt int) time.Duration {
	bound := base
	for i := 1; i < attempt && bound < max; i++ {
		bound *= 2
	}
	bound = min(bound, max)
	lo := min(base/2, bound)
	return lo + rand.N(bound-lo+1)
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
