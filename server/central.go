package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// Central is the lottery central: it accepts agencies, stores their bets,
// holds the draw barrier and answers winners.
//
// Concurrency: one goroutine per connection (session). The fields below mu are
// the only state shared between sessions, and mu guards all of them. No
// session holds mu while it does I/O: commits run outside it (the store is safe
// for concurrent use and serialises writers itself), so agencies' batches do
// not wait on each other except at the store's single writer.
type Central struct {
	opts  Options
	store *store.Store
	log   *logging.Logger
	round uint64 // identifies this round to agencies: its start time in ns

	slots chan struct{} // one token per open connection: the connection limit
	wg    sync.WaitGroup

	mu       sync.Mutex
	closing  bool                  // shutdown began: no new deadlines, no new sessions
	conns    map[net.Conn]struct{} // open connections, to unblock them on shutdown
	live     map[int]bool          // agencies with a session in progress
	finished map[int]bool          // agencies that finished sending (durable in store)
	drawing  bool                  // the draw started; it runs once
	drawn    chan struct{}         // closed when the draw's result is known
	winners  map[int][]string      // per agency, valid once drawn is closed
	drawErr  error                 // set if the draw failed, before drawn is closed
}

// newCentral opens the round in the store at opts.DBPath: a finished and
// delivered round is archived and a new one started; an unfinished one resumes.
func newCentral(opts Options, log *logging.Logger) (*Central, error) {
	s, r, err := openRound(opts, log)
	if err != nil {
		return nil, err
	}
	c := &Central{
		opts:     opts,
		store:    s,
		log:      log,
		round:    uint64(r.Started.UnixNano()),
		slots:    make(chan struct{}, opts.MaxConns),
		conns:    map[net.Conn]struct{}{},
		live:     map[int]bool{},
		finished: map[int]bool{},
		drawn:    make(chan struct{}),
	}
	for a := range r.Finished {
		if a >= 1 && a <= opts.Agencies {
			c.finished[a] = true
		}
	}
	if r.Drawn {
		c.drawing = true
		c.winners = r.Winners
		close(c.drawn)
	}
	return c, nil
}

func openRound(opts Options, log *logging.Logger) (*store.Store, store.Round, error) {
	sopts := store.Options{Coalesce: opts.Coalesce, MaxBatchDelay: opts.CoalesceMax}
	s, err := store.Open(opts.DBPath, sopts)
	if err != nil {
		return nil, store.Round{}, err
	}
	r, err := s.Round()
	if err != nil {
		s.Close()
		return nil, store.Round{}, err
	}
	if r.Drawn && len(r.Delivered) >= opts.Agencies {
		// The last round is over and every agency confirmed its winners: move it aside.
		if err := s.Close(); err != nil {
			return nil, store.Round{}, err
		}
		dst, err := store.Archive(opts.DBPath, r.DrawTime)
		if err != nil {
			return nil, store.Round{}, err
		}
		log.Infof("action: archivar_ronda | result: success | archivo: %s | apuestas: %d", dst, r.Bets)
		if s, err = store.Open(opts.DBPath, sopts); err != nil {
			return nil, store.Round{}, err
		}
		if r, err = s.Round(); err != nil {
			s.Close()
			return nil, store.Round{}, err
		}
	} else if r.Bets > 0 || len(r.Finished) > 0 {
		log.Infof("action: recuperar_ronda | result: success | apuestas: %d | agencias_finalizadas: %d | sorteo: %t",
			r.Bets, len(r.Finished), r.Drawn)
	}
	return s, r, nil
}

// Serve accepts connections on ln until ctx is cancelled, then shuts down:
// it stops accepting, lets commits in progress finish, answers sessions that
// wait for winners with an error, closes every connection and waits for all
// sessions. It does not close the store (see Close).
func (c *Central) Serve(ctx context.Context, ln net.Listener) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	c.resumeDraw(ctx)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				break
			}
			c.log.Errorf("action: accept_connection | result: fail | error: %v", err)
			continue
		}
		select {
		case c.slots <- struct{}{}:
		default:
			c.refuse(conn)
			continue
		}
		if !c.track(conn) {
			<-c.slots
			conn.Close()
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer func() { <-c.slots }()
			defer c.untrack(conn)
			c.serveConn(ctx, conn)
		}()
	}
	ln.Close()
	c.log.Info("action: close_listener | result: success")
	c.unblockAll()
	c.wg.Wait()
}

// resumeDraw starts the draw at once when every agency had finished before a
// restart but the draw had not completed.
func (c *Central) resumeDraw(ctx context.Context) {
	c.mu.Lock()
	start := len(c.finished) == c.opts.Agencies && !c.drawing
	c.drawing = c.drawing || start
	c.mu.Unlock()
	if start {
		c.startDraw(ctx)
	}
}

// refuse answers a connection over the limit with an error frame and closes it.
func (c *Central) refuse(conn net.Conn) {
	ip := remoteIP(conn)
	c.log.Warningf("action: accept_connection | result: fail | ip: %s | error: connection limit of %d reached", ip, c.opts.MaxConns)
	conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	protocol.Write(conn, protocol.NewError(protocol.CodeUnavailable, "central at its limit of %d connections", c.opts.MaxConns))
	conn.Close()
}

func (c *Central) track(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.conns[conn] = struct{}{}
	return true
}

func (c *Central) untrack(conn net.Conn) {
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
	conn.Close()
	c.log.Debugf("action: close_connection | result: success | ip: %s", remoteIP(conn))
}

// unblockAll makes every pending read return now, so sessions see shutdown.
func (c *Central) unblockAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	for conn := range c.conns {
		conn.SetReadDeadline(time.Unix(1, 0))
		c.log.Infof("action: close_connection | result: success | ip: %s", remoteIP(conn))
	}
}

// armRead sets the deadline for the next read, unless shutdown began.
func (c *Central) armRead(conn net.Conn, d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if d > 0 {
		conn.SetReadDeadline(time.Now().Add(d))
	} else {
		conn.SetReadDeadline(time.Time{})
	}
	return true
}

// Close closes the store. Call it after Serve returned.
func (c *Central) Close() error {
	err := c.store.Close()
	if err != nil {
		c.log.Errorf("action: close_store | result: fail | error: %v", err)
		return err
	}
	c.log.Info("action: close_store | result: success")
	return nil
}

// serveConn tells an echo health check from a protocol session by the first byte.
func (c *Central) serveConn(ctx context.Context, conn net.Conn) {
	br := bufio.NewReaderSize(conn, protocol.MaxBatchFrame)
	if !c.armRead(conn, c.opts.IdleTimeout) {
		return
	}
	first, err := br.Peek(1)
	if errors.Is(err, io.EOF) {
		// A probe that connects and closes (a TCP health check): nothing failed.
		c.log.Debugf("action: receive_message | result: success | ip: %s | bytes: 0", remoteIP(conn))
		return
	}
	if err != nil {
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: %s", remoteIP(conn), logformat.Value(err.Error()))
		return
	}
	switch b := first[0]; {
	case b == protocol.Marker:
		s := &session{c: c, conn: conn, r: protocol.NewReader(br, protocol.MaxFrame), ip: remoteIP(conn), sent: -1}
		s.run(ctx)
	case b >= 0x20 && b < 0x7f || b == '\t':
		c.echo(conn, br)
	default:
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: first byte 0x%02x is neither text nor a protocol frame", remoteIP(conn), b)
		protocol.Write(conn, protocol.NewError(protocol.CodeMalformed, "first byte 0x%02x is neither text nor a protocol frame", b))
	}
}

// maxEchoLine bounds the line an echo check may send.
const maxEchoLine = 64 << 10

// echo serves the netcat health check: one line in, the same line back. The
// line is logged escaped (logformat.Value): it comes from the network.
func (c *Central) echo(conn net.Conn, br *bufio.Reader) {
	ip := remoteIP(conn)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil || len(line) > maxEchoLine {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			break // a last line without a newline is echoed as it came
		}
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: %s", ip, logformat.Value(err.Error()))
		return
	}
	if len(line) > maxEchoLine {
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: line over %d bytes", ip, maxEchoLine)
		return
	}
	conn.SetWriteDeadline(time.Now().Add(c.opts.IdleTimeout))
	if _, err := conn.Write(line); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			// The peer left before its echo: its loss, not the central's failure.
			c.log.Debugf("action: receive_message | result: success | ip: %s | msg: %s | echo: peer gone", ip, logformat.Value(trimEOL(line)))
			return
		}
		c.log.Warningf("action: receive_message | result: fail | ip: %s | error: %s", ip, logformat.Value(err.Error()))
		return
	}
	c.log.Infof("action: receive_message | result: success | ip: %s | msg: %s", ip, logformat.Value(trimEOL(line)))
}

func trimEOL(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}

func remoteIP(conn net.Conn) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return conn.RemoteAddr().String()
}

// register starts agency's session; false if another one is live.
func (c *Central) register(agency int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live[agency] {
		return false
	}
	c.live[agency] = true
	return true
}

func (c *Central) unregister(agency int) {
	c.mu.Lock()
	delete(c.live, agency)
	c.mu.Unlock()
}

// finish marks agency finished and starts the draw when it was the last one.
// It returns how many agencies have finished.
func (c *Central) finish(ctx context.Context, agency int) int {
	c.mu.Lock()
	c.finished[agency] = true
	n := len(c.finished)
	start := n == c.opts.Agencies && !c.drawing
	c.drawing = c.drawing || start
	c.mu.Unlock()
	if start {
		c.startDraw(ctx)
	}
	return n
}

// startDraw runs the draw once, in its own goroutine, so that the last
// agency's finish is acknowledged without waiting for the scan.
func (c *Central) startDraw(ctx context.Context) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		winners, err := c.draw(ctx)
		if ctx.Err() != nil {
			return // shutdown: the next start resumes the draw
		}
		c.mu.Lock()
		c.winners, c.drawErr = winners, err
		close(c.drawn)
		c.mu.Unlock()
	}()
}

// draw scans every stored bet with lottery.HasWon and stores the result.
func (c *Central) draw(ctx context.Context) (map[int][]string, error) {
	start := time.Now()
	winners := make(map[int][]string, c.opts.Agencies)
	for a := 1; a <= c.opts.Agencies; a++ {
		winners[a] = []string{}
	}
	total, scanned := 0, 0
	err := c.store.ScanBets(func(bet *lottery.Bet) error {
		scanned++
		if scanned%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if lottery.HasWon(*bet) {
			// The bet's strings live in the store's map: keep a copy.
			winners[bet.Agency] = append(winners[bet.Agency], strings.Clone(bet.Document))
			total++
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Errorf("action: sorteo | result: fail | error: %v", err)
		}
		return nil, err
	}
	if err := c.store.SaveDraw(time.Now(), c.opts.Agencies, winners); err != nil {
		c.log.Errorf("action: sorteo | result: fail | error: %v", err)
		return nil, err
	}
	c.log.Infof("action: sorteo | result: success | ganadores: %d | apuestas: %d | duracion: %s",
		total, scanned, time.Since(start).Round(time.Millisecond))
	return winners, nil
}

// awaitDraw waits for the draw's result for agency, or for ctx or gone.
func (c *Central) awaitDraw(ctx context.Context, gone <-chan struct{}, agency int) ([]string, error) {
	select {
	case <-c.drawn:
	case <-ctx.Done():
		return nil, protocol.NewError(protocol.CodeUnavailable, "central shutting down before the draw")
	case <-gone:
		return nil, errGone
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drawErr != nil {
		return nil, protocol.NewError(protocol.CodeInternal, "draw failed: %v", c.drawErr)
	}
	return c.winners[agency], nil
}

var errGone = fmt.Errorf("agency closed the connection while waiting for the draw")
