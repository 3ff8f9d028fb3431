package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/op/go-logging"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
	"github.com/loteria-nacional/tp0/store"
)

// session serves one agency connection: hello, batches, finish, winners.
// Its fields are owned by its goroutine.
type session struct {
	c      *Central
	conn   net.Conn
	r      *protocol.Reader
	ip     string
	agency int // 0 until hello
	mode   protocol.Mode
	out    []byte // reused encode buffer
	sent   int    // winners sent, -1 until they are
}

// errEnd ends a session after its reply was sent.
var errEnd = errors.New("session ended")

func (s *session) run(ctx context.Context) {
	defer func() {
		if s.agency != 0 {
			s.c.unregister(s.agency)
		}
	}()
	for {
		if !s.c.armRead(s.conn, s.c.opts.IdleTimeout) {
			return
		}
		m, err := s.r.Next()
		if err != nil {
			s.readFailed(err)
			return
		}
		if err := s.handle(ctx, m); err != nil {
			return
		}
	}
}

// readFailed logs why the next frame could not be read, and tells the agency
// when the connection is still usable.
func (s *session) readFailed(err error) {
	var nerr net.Error
	switch {
	case errors.Is(err, io.EOF):
		s.c.log.Debugf("action: receive_message | result: success | ip: %s | agencia: %d | fin: eof", s.ip, s.agency)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout():
		if s.closing() {
			return // shutdown: the connection is closed without a word
		}
		s.fail("receive_message", protocol.NewError(protocol.CodeTimeout, "no complete frame within %s", s.c.opts.IdleTimeout))
	case errors.Is(err, protocol.ErrMarker), errors.Is(err, protocol.ErrKind), errors.Is(err, protocol.ErrTooLarge),
		errors.Is(err, protocol.ErrTruncated), errors.Is(err, protocol.ErrCount), errors.Is(err, protocol.ErrUTF8),
		errors.Is(err, protocol.ErrTrailing), errors.Is(err, protocol.ErrMode):
		s.fail("receive_message", protocol.NewError(protocol.CodeMalformed, "%v", err))
	default:
		s.c.log.Warningf("action: receive_message | result: fail | ip: %s | agencia: %d | error: %s", s.ip, s.agency, logformat.Value(err.Error()))
	}
}

func (s *session) closing() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.c.closing
}

// fail logs a failed action and sends the error reply. It returns errEnd for
// fatal codes, nil when the session goes on. fields, "key: value" pairs,
// follow the result in the log line.
func (s *session) fail(action string, e *protocol.Error, fields ...string) error {
	extra := ""
	for _, f := range fields {
		extra += " | " + f
	}
	s.c.log.Warningf("action: %s | result: fail%s | ip: %s | agencia: %d | code: %s | error: %s", action, extra, s.ip, s.agency, e.Code, logformat.Value(e.Error()))
	if err := s.send(e); err != nil || fatal(e.Code) {
		return errEnd
	}
	return nil
}

// fatal reports whether the connection closes after an error of code c.
func fatal(c protocol.Code) bool {
	switch c {
	case protocol.CodeInvalidBet, protocol.CodeGap, protocol.CodeIncomplete:
		return false
	}
	return true
}

func (s *session) send(m protocol.Message) error {
	var err error
	if s.out, err = protocol.Append(s.out[:0], m); err != nil {
		return err
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.c.opts.IdleTimeout))
	if err := protocol.WriteFull(s.conn, s.out); err != nil {
		s.c.log.Warningf("action: send_message | result: fail | ip: %s | agencia: %d | error: %v", s.ip, s.agency, err)
		return err
	}
	return nil
}

func (s *session) handle(ctx context.Context, m protocol.Message) error {
	if _, ok := m.(*protocol.Hello); !ok && s.agency == 0 {
		return s.fail("receive_message", protocol.NewError(protocol.CodeUnexpected, "%s before hello", m.Kind()))
	}
	switch m := m.(type) {
	case *protocol.Hello:
		return s.hello(m)
	case *protocol.Batch:
		return s.batch(m)
	case *protocol.Finish:
		return s.finish(ctx, m)
	case *protocol.WinnersRequest:
		return s.winners(ctx)
	case *protocol.Received:
		return s.received()
	default:
		return s.fail("receive_message", protocol.NewError(protocol.CodeUnexpected, "an agency does not send %s", m.Kind()))
	}
}

func (s *session) hello(m *protocol.Hello) error {
	if s.agency != 0 {
		return s.fail("hello", protocol.NewError(protocol.CodeUnexpected, "second hello on agency %d's session", s.agency))
	}
	if m.Agency < 1 || m.Agency > s.c.opts.Agencies {
		return s.fail("hello", protocol.NewError(protocol.CodeUnknownAgency, "agency %d is outside 1..%d", m.Agency, s.c.opts.Agencies))
	}
	if !s.c.register(m.Agency) {
		return s.fail("hello", protocol.NewError(protocol.CodeBusy, "agency %d already has a session in progress", m.Agency))
	}
	s.agency, s.mode = m.Agency, m.Mode
	committed, finished, err := s.c.store.Committed(s.agency)
	if err != nil {
		return s.fail("hello", protocol.NewError(protocol.CodeInternal, "reading agency state: %v", err))
	}
	s.c.log.Infof("action: hello | result: success | ip: %s | agencia: %d | modo: %s | confirmadas: %d | finalizada: %t",
		s.ip, s.agency, s.mode, committed, finished)
	if err := s.send(&protocol.Welcome{Round: s.c.round, Committed: committed, Finished: finished}); err != nil {
		return errEnd
	}
	return nil
}

func (s *session) batch(m *protocol.Batch) error {
	n := len(m.Bets)
	count := fmt.Sprintf("cantidad: %d", n)
	if m.Agency != s.agency {
		return s.fail("apuesta_recibida", protocol.NewError(protocol.CodeUnknownAgency,
			"batch for agency %d on agency %d's session", m.Agency, s.agency), count)
	}
	rc, err := s.c.store.Append(s.agency, m.First, m.Bets)
	if err != nil {
		var be *store.BetError
		switch {
		case errors.As(err, &be):
			return s.fail("apuesta_recibida", &protocol.Error{Code: protocol.CodeInvalidBet, Index: be.Index, Message: be.Err.Error()}, count)
		case errors.Is(err, store.ErrGap):
			return s.fail("apuesta_recibida", protocol.NewError(protocol.CodeGap, "%v", err), count)
		case errors.Is(err, store.ErrFinished):
			return s.fail("apuesta_recibida", protocol.NewError(protocol.CodeFinished, "agency %d already finished: no more bets", s.agency), count)
		case errors.Is(err, store.ErrDrawDone):
			return s.fail("apuesta_recibida", protocol.NewError(protocol.CodeFinished, "the draw already ran"), count)
		default:
			return s.fail("apuesta_recibida", protocol.NewError(protocol.CodeInternal, "storing the batch: %v", err), count)
		}
	}
	s.c.log.Infof("action: apuesta_recibida | result: success | cantidad: %d", n)
	level := logging.DEBUG
	if s.mode == protocol.ModeSingle {
		level = logging.INFO
	}
	if s.c.log.IsEnabledFor(level) {
		for _, b := range m.Bets[n-rc.Stored:] {
			if level == logging.INFO {
				s.c.log.Infof("action: apuesta_almacenada | result: success | dni: %s | numero: %d", b.Document, b.Number)
			} else {
				s.c.log.Debugf("action: apuesta_almacenada | result: success | dni: %s | numero: %d", b.Document, b.Number)
			}
		}
	}
	if err := s.send(&protocol.Ack{First: m.First, Stored: rc.Stored, Committed: rc.Committed}); err != nil {
		return errEnd
	}
	return nil
}

func (s *session) finish(ctx context.Context, m *protocol.Finish) error {
	committed, finished, err := s.c.store.Committed(s.agency)
	if err != nil {
		return s.fail("agencia_finalizada", protocol.NewError(protocol.CodeInternal, "reading agency state: %v", err))
	}
	if committed != m.Total {
		return s.fail("agencia_finalizada", protocol.NewError(protocol.CodeIncomplete,
			"agency %d announced %d bets, %d are committed", s.agency, m.Total, committed))
	}
	if !finished {
		if err := s.c.store.Finish(s.agency, m.Total); err != nil {
			return s.fail("agencia_finalizada", protocol.NewError(protocol.CodeInternal, "recording the finish: %v", err))
		}
	}
	n := s.c.finish(ctx, s.agency)
	s.c.log.Infof("action: agencia_finalizada | result: success | agencia: %d | apuestas: %d | finalizadas: %d | agencias: %d",
		s.agency, m.Total, n, s.c.opts.Agencies)
	if err := s.send(&protocol.Finished{Finished: n, Agencies: s.c.opts.Agencies}); err != nil {
		return errEnd
	}
	return nil
}

// winners waits for the draw and answers the agency's own winners; the
// agency's Received then ends the session.
func (s *session) winners(ctx context.Context) error {
	if _, finished, err := s.c.store.Committed(s.agency); err != nil || !finished {
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeUnexpected,
			"agency %d has not finished: winners are answered after its finish", s.agency))
	}
	// While waiting, a read notices the agency leaving (or misbehaving).
	if !s.c.armRead(s.conn, 0) {
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeUnavailable, "central shutting down"))
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		var b [1]byte
		s.conn.Read(b[:])
	}()
	docs, err := s.c.awaitDraw(ctx, gone, s.agency)
	s.conn.SetReadDeadline(time.Unix(1, 0))
	<-gone
	if err != nil {
		var perr *protocol.Error
		if errors.As(err, &perr) {
			return s.fail("consulta_ganadores", perr)
		}
		s.c.log.Warningf("action: consulta_ganadores | result: fail | ip: %s | agencia: %d | error: %v", s.ip, s.agency, err)
		return errEnd
	}
	for i := 0; ; i += protocol.WinnersPerFrame {
		end := min(i+protocol.WinnersPerFrame, len(docs))
		last := end == len(docs)
		if err := s.send(&protocol.Winners{Last: last, Documents: docs[i:end]}); err != nil {
			return errEnd
		}
		if last {
			break
		}
	}
	s.sent = len(docs)
	return nil // the agency confirms with Received
}

// received records that the agency has its winners, durably, and ends the
// session with Goodbye. Until then the round cannot be archived.
func (s *session) received() error {
	if s.sent < 0 {
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeUnexpected, "received before any winners were sent"))
	}
	if err := s.c.store.Delivered(s.agency); err != nil {
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeInternal, "recording the delivery: %v", err))
	}
	s.c.log.Infof("action: consulta_ganadores | result: success | agencia: %d | cant_ganadores: %d", s.agency, s.sent)
	s.send(&protocol.Goodbye{})
	return errEnd
}
