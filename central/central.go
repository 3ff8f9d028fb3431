package central

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// Central is the lottery central: it accepts agencies, stores their bets,
// holds the draw barrier and answers winners.
//
// Concurrency: one goroutine per connection (session), one for the draw.
// What sessions share lives in three small types, each with its own lock and
// none doing I/O under it: conns (open connections and shutdown), owners
// (one live session per agency) and barrier (finishes, the draw, winners).
// Commits run outside all of them: the store is safe for concurrent use and
// serialises writers itself.
type Central struct {
	opts  Options
	tls   *tls.Config // mutual TLS for agencies; nil without it
	store betStore
	draws drawStore // one central's draw; nil on a replica (the log draws)
	local *local    // one central's file (nil on a replica)
	log   logformat.Logger
	round atomic.Uint64 // identifies this round to agencies: its start time in ns

	slots *slots
	wg    sync.WaitGroup

	conns   *conns
	owners  *owners
	bar     atomic.Pointer[barrier] // the round's; replaced when a replica leads, or a round begins
	metrics *metrics
	cluster Replica // nil on one central
	signer  signer  // signs the drawn round's record (record.go)

	replicaMu sync.Mutex
	replicas  map[net.Conn]bool // connections handed to raft
	ready     atomic.Bool       // accepting, and not shutting down (/readyz)
	// switching is set while a new round replaces the finished one: hellos
	// are answered unavailable meanwhile.
	switching atomic.Bool
	roundMu   sync.Mutex // one new round at a time
	hooks     hooks
	// faultCount counts batches for Options.Faults.
	faultCount atomic.Int64

	abort         context.CancelCauseFunc // ends Serve with a cause (a damaged store)
	adminTimeouts adminTimeouts
	admin         *http.Server   // the operators' listener, once ServeAdmin started it
	adminDone     sync.WaitGroup // its Serve
	closeOnce     sync.Once
	closeErr      error
}

// New validates opts and opens the round in the store at opts.DBPath: a
// finished and delivered round is archived and a new one started; an
// unfinished one resumes. The caller serves it (Serve) and then closes it.
func New(opts Options) (*Central, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if now := opts.Now(); now.Before(clockFloor) {
		return nil, fmt.Errorf("%w: it reads %s, before %s (when this program was built): set the clock (NTP) and start again",
			ErrClock, now.UTC().Format(time.RFC3339), clockFloor.UTC().Format(time.RFC3339))
	}
	opts.MaxConns, _ = ConnectionLimit(opts.MaxConns, opts.Cluster != nil)
	log := opts.Logger
	var s betStore
	var lc *local
	var r store.Round
	var err error
	if opts.Cluster != nil {
		// A replica: the round is the cluster's (its first leader begins it).
		s = opts.Cluster
		if r, err = s.Round(); err != nil {
			return nil, err
		}
	} else {
		if lc, r, err = openRound(opts, log); err != nil {
			return nil, err
		}
		s = lc
	}
	var winners map[int][]string
	if r.Drawn {
		winners = r.Winners
	}
	conns := newConns()
	c := &Central{
		opts:    opts,
		tls:     opts.TLS,
		store:   s,
		local:   lc,
		log:     log,
		cluster: opts.Cluster,

		replicas: map[net.Conn]bool{},
		slots:    newSlots(opts.MaxConns, opts.Cluster != nil),
		conns:    conns,
		owners:   newOwners(func(c net.Conn) { conns.fence(c, protocol.CodeReplaced) }),

		adminTimeouts: defaultAdminTimeouts,
		signer:        signerOf(opts.TLS),
	}
	if lc != nil {
		c.draws = lc
	}
	c.round.Store(uint64(r.Started.UnixNano()))
	c.bar.Store(newBarrier(r.AgencyCount(opts.Agencies), r.Finished, winners))
	c.metrics = newMetrics(c)
	if lc != nil {
		c.recordRound() // a drawn round whose record a crash left unwritten
	}
	return c, nil
}

// barrier is the draw barrier of the round being served.
func (c *Central) barrier() *barrier { return c.bar.Load() }

// ErrAgencies means AGENCIES differs from the count the round started with.
var ErrAgencies = errors.New("AGENCIES differs from the round in the store")

// ErrClock means the clock reads a time before this program was written: a
// machine without a battery-backed clock, not yet synchronised. A round's
// start day decides which bets are valid (no birthdate in the future), and
// the draw's time names its archive, so no round runs on such a clock.
var ErrClock = errors.New("the clock is wrong")

// clockFloor is a time every correct clock is past: before this code was
// written. The build's commit time, when the binary carries it, raises it.
var clockFloor = func() time.Time {
	floor := time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if t, err := time.Parse(time.RFC3339, s.Value); s.Key == "vcs.time" && err == nil && t.After(floor) {
				floor = t
			}
		}
	}
	return floor
}()

func openRound(opts Options, log logformat.Logger) (*local, store.Round, error) {
	sopts := store.Options{GroupCommit: opts.GroupCommit, Now: opts.Now, Check: opts.StoreCheck}
	s, err := store.Open(opts.DBPath, sopts)
	if err != nil {
		return nil, store.Round{}, err
	}
	sopts.Check = nil // the next rounds' files are this process's own
	r, err := s.Round()
	if err != nil {
		s.Close()
		return nil, store.Round{}, err
	}
	if r.Over(opts.Agencies) {
		// The last round is over and every agency confirmed its winners: move it aside.
		if err := s.Close(); err != nil {
			return nil, store.Round{}, err
		}
		if s, r, err = archiveAndOpen(opts.DBPath, sopts, opts.ArchiveKeep, r, log); err != nil {
			return nil, store.Round{}, err
		}
	} else if r.Bets > 0 || len(r.Finished) > 0 {
		log.Infof("action: recuperar_ronda | result: success | apuestas: %d | agencias_finalizadas: %d | sorteo: %t",
			r.Bets, len(r.Finished), r.Drawn)
	}
	// The draw waits for AGENCIES agencies: a round that has begun keeps the
	// count it began with. An empty one takes the configured count.
	if r.Begun() && r.Agencies != 0 && r.Agencies != opts.Agencies {
		s.Close()
		return nil, store.Round{}, fmt.Errorf("%w: AGENCIES = %d, but the round in %s began with %d (%d bets, %d agencies finished); restart with AGENCIES=%d, or move the file aside to start a new round",
			ErrAgencies, opts.Agencies, opts.DBPath, r.Agencies, r.Bets, len(r.Finished), r.Agencies)
	}
	if r.Agencies != opts.Agencies {
		if err := s.SetAgencies(opts.Agencies); err != nil {
			s.Close()
			return nil, store.Round{}, err
		}
		r.Agencies = opts.Agencies
	}
	return &local{path: opts.DBPath, opts: sopts, keep: opts.ArchiveKeep, log: log, st: s}, r, nil
}

// Serve accepts connections on ln until ctx is cancelled, then shuts down:
// it stops accepting, lets commits in progress finish, answers sessions that
// wait for winners with an error, closes every connection and waits for all
// sessions. It returns nil after a cancel; the error that ended the accept
// loop; or, after the same shutdown, what stopped the central for good: a
// damaged store (store.ErrDamaged), or a replica that could not apply the
// log (cluster.ErrApply). It does not close the store (see Close).
func (c *Central) Serve(ctx context.Context, ln net.Listener) error {
	ctx, c.abort = context.WithCancelCause(ctx)
	defer c.abort(nil)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if c.cluster != nil {
		c.serveCluster(ctx)
	} else if c.barrier().resume() {
		c.startDraw(ctx)
	}
	c.ready.Store(true)
	c.log.Infof("action: listen | result: success | direccion: %s", ln.Addr())
	err := c.accept(ctx, ln)
	c.ready.Store(false)
	ln.Close()
	c.log.Infof("action: close_listener | result: success")
	for _, conn := range c.conns.shutdown() {
		c.log.Infof("action: close_connection | result: success | ip: %s", remoteIP(conn))
	}
	c.wg.Wait()
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}

// checkDamage stops the central when err says the store file is damaged:
// nothing can be stored or drawn any more, and going on would only answer
// every agency with internal errors (and, at every restart, crash again).
func (c *Central) checkDamage(err error) {
	if errors.Is(err, store.ErrDamaged) && c.abort != nil {
		c.log.Criticalf("action: store | result: fail | error: %s | sugerencia: %s", logformat.Value(err.Error()), store.Hint)
		c.abort(err)
	}
}

// accept runs the accept loop until the listener is closed (nil) or fails
// for good (that error). Temporary errors (out of file descriptors, say)
// are retried after a growing pause, as net/http does, so a full descriptor
// table cannot spin the loop.
func (c *Central) accept(ctx context.Context, ln net.Listener) error {
	failures := 0
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			if !temporaryAccept(err) {
				return fmt.Errorf("accepting connections: %w", err)
			}
			failures++
			wait := acceptDelay(failures)
			c.log.Errorf("action: accept_connection | result: fail | consecutivos: %d | espera: %s | error: %s", failures, wait, logformat.Value(err.Error()))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		failures = 0
		slot := c.slots.take()
		if slot == nil {
			c.refuse(conn)
			continue
		}
		if !c.conns.track(conn) {
			slot.release()
			conn.Close()
			continue
		}
		setKeepAlive(conn)
		c.wg.Add(1)
		c.metrics.sessions.Inc()
		go func() {
			defer c.wg.Done()
			defer c.metrics.sessions.Dec()
			defer slot.release()
			defer func() {
				c.conns.untrack(conn)
				conn.Close()
				c.log.Debugf("action: close_connection | result: success | ip: %s", remoteIP(conn))
			}()
			c.serveConn(ctx, conn, slot)
		}()
	}
}

// temporaryAccept reports whether an accept error may go away by itself.
func temporaryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// acceptDelay is the pause after the n-th consecutive temporary accept
// error (n from 1): 5 ms doubling up to 1 s.
func acceptDelay(n int) time.Duration {
	const lo, hi = 5 * time.Millisecond, time.Second
	if n > 8 {
		return hi
	}
	return min(lo<<(n-1), hi)
}

// Keepalive probes find a peer that vanished (a cable pulled, a host
// powered off) within about keepAliveIdle + keepAliveCount × keepAliveInterval,
// even while its session only waits for the draw.
const (
	keepAliveIdle     = 5 * time.Second
	keepAliveInterval = 3 * time.Second
	keepAliveCount    = 3
)

func setKeepAlive(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount})
	}
}

// refuse answers a connection over the limit with an error frame and closes
// it. The frame (about 60 bytes) is the first thing written on the
// connection, so it fits the empty send buffer and the write returns at
// once whatever the peer does; refuseWrite is only a safety net. (A
// deadline of a millisecond or two is not: a goroutine descheduled that long
// before its write would drop the frame.)
func (c *Central) refuse(conn net.Conn) { c.refuseOn(conn, conn) }

// refuseOn refuses conn over the limit, writing the frame on w (conn, or
// the TLS tunnel over it).
func (c *Central) refuseOn(conn net.Conn, w io.Writer) {
	c.log.Warningf("action: accept_connection | result: fail | ip: %s | error: connection limit of %d reached", remoteIP(conn), c.opts.MaxConns)
	c.metrics.refused.Inc()
	conn.SetWriteDeadline(time.Now().Add(refuseWrite))
	protocol.Write(w, protocol.NewError(protocol.CodeUnavailable, "central at its limit of %d connections", c.opts.MaxConns))
	conn.Close()
}

// refuseWrite bounds the write of a refusal.
const refuseWrite = 50 * time.Millisecond

// Close shuts the admin listener down (within a second), then closes the
// store. Call it after Serve returned; later calls return the first's result.
func (c *Central) Close() error {
	c.closeOnce.Do(func() {
		if c.admin != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := c.admin.Shutdown(ctx); err != nil {
				c.admin.Close()
			}
			cancel()
			c.adminDone.Wait()
		}
		if err := c.store.Close(); err != nil {
			c.log.Errorf("action: close_store | result: fail | error: %s", logformat.Value(err.Error()))
			c.closeErr = err
			return
		}
		c.log.Infof("action: close_store | result: success")
	})
	return c.closeErr
}
