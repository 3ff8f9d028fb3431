package central

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/loteria-nacional/tp0/logformat"
	"github.com/loteria-nacional/tp0/protocol"
)

// session serves one agency connection: hello, batches, finish, winners.
// Its fields are owned by its goroutine.
type session struct {
	c       *Central
	conn    net.Conn      // what the protocol is spoken over
	raw     net.Conn      // the TCP connection under it, closed to fence the session
	br      *bufio.Reader // plaintext: the buffer under r (nil over TLS)
	r       *protocol.Reader
	ip      string
	release func() // gives back the connection's slot
	// certAgency is the agency the TLS client certificate names; 0 in
	// plaintext. A session speaks only for it.
	certAgency int

	agency  int // 0 until hello
	mode    protocol.Mode
	disown  func() // ends this session's ownership of its agency
	out     []byte // reused encode buffer
	winners int    // documents sent with Winners
	sent    bool   // the winners were sent: Received may follow

	toldReplaced bool // the agency was told a newer session took over

	// A replica's session pipelines its batches (pipeline.go); wmu
	// serialises its writes with the pipeline's acks.
	pipe *pipeline
	wmu  sync.Mutex
}

// internalMessage is all an agency is told of an internal error.
const internalMessage = "the central could not complete the request; it is logged there, retry later"

// errEnd ends a session after its reply was sent.
var errEnd = errors.New("session ended")

func (s *session) run(ctx context.Context) {
	defer func() {
		if s.disown != nil {
			s.disown()
		}
	}()
	// Batches in flight are answered before the session lets its agency go
	// (a newer session's Welcome counts them).
	defer func() {
		if s.pipe != nil {
			s.pipe.close()
		}
	}()
	for {
		if !s.c.conns.armRead(s.raw, s.c.opts.IdleTimeout) {
			s.fenced()
			return
		}
		m, err := s.r.Next()
		if err != nil {
			if s.pipe != nil && s.pipe.failed.Load() {
				return // an answer ended the session, and said why
			}
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
	case errors.Is(err, net.ErrClosed):
		s.c.log.Debugf("action: receive_message | result: success | ip: %s | agencia: %d | fin: reemplazada", s.ip, s.agency)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout():
		if s.fenced() || s.c.conns.isClosing() {
			return // fenced: told so; shutdown: closed without a word
		}
		s.fail("receive_message", protocol.NewError(protocol.CodeTimeout, "no complete frame within %s", s.c.opts.IdleTimeout))
	case errors.Is(err, protocol.ErrMalformed):
		s.fail("receive_message", protocol.NewError(protocol.CodeMalformed, "%v", err))
	default:
		s.c.log.Warningf("action: receive_message | result: fail | ip: %s | agencia: %d | error: %s", s.ip, s.agency, logformat.Value(err.Error()))
	}
}

// fail logs a failed action and sends the error reply. It returns errEnd for
// fatal codes, nil when the session goes on. fields, "key: value" pairs,
// follow the result in the log line.
func (s *session) fail(action string, e *protocol.Error, fields ...string) error {
	extra := ""
	for _, f := range fields {
		extra += " | " + f
	}
	s.c.log.Warningf("action: %s | result: fail%s | ip: %s | agencia: %d | codigo: %s | error: %s", action, extra, s.ip, s.agency, e.Code, logformat.Value(e.Error()))
	s.c.metrics.protoErrors.WithLabelValues(e.Code.String()).Inc()
	reply := e
	if e.Code == protocol.CodeInternal {
		// The detail (a path, a bucket and key, an OS error) is the
		// operator's, in the log line above; the peer learns only that the
		// central failed and that it may retry.
		reply = &protocol.Error{Code: e.Code, Index: -1, Message: internalMessage}
	}
	if err := s.send(reply); err != nil || e.Code.Fatal() {
		return errEnd
	}
	return nil
}

// fenced reports whether a newer session of this agency took over this one;
// if so, it tells the agency (once) before the session ends, so that the
// agency knows it was replaced rather than cut off.
func (s *session) fenced() bool {
	if s.agency == 0 || !s.c.conns.isFenced(s.raw) {
		return false
	}
	if !s.toldReplaced {
		s.toldReplaced = true
		if code := s.c.conns.fenceCode(s.raw); code == protocol.CodeNotLeader {
			_, leader := s.c.cluster.Leader()
			s.c.log.Infof("action: sesion_cerrada | result: success | ip: %s | agencia: %d | motivo: not_leader | lider: %s", s.ip, s.agency, logformat.Value(leader))
			s.send(&protocol.Error{Code: protocol.CodeNotLeader, Index: -1, Message: leader})
		} else {
			s.c.log.Infof("action: sesion_reemplazada | result: success | ip: %s | agencia: %d", s.ip, s.agency)
			s.send(protocol.NewError(protocol.CodeReplaced, "a newer session of agency %d took over this one", s.agency))
		}
	}
	return true
}

// internal fails action with an internal error: doing what, and the store's
// err (logged, not sent). A damaged store stops the central.
func (s *session) internal(action, doing string, err error) error {
	s.c.checkDamage(err)
	return s.fail(action, protocol.NewError(protocol.CodeInternal, "%s: %v", doing, err))
}

func (s *session) send(m protocol.Message) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	if s.out, err = protocol.Append(s.out[:0], m); err != nil {
		return err
	}
	s.c.conns.armWrite(s.raw, s.c.opts.IdleTimeout)
	if _, err := s.conn.Write(s.out); err != nil {
		s.c.log.Warningf("action: send_message | result: fail | ip: %s | agencia: %d | error: %s", s.ip, s.agency, logformat.Value(err.Error()))
		return err
	}
	return nil
}

func (s *session) handle(ctx context.Context, m protocol.Message) error {
	if _, batch := m.(*protocol.BatchFrame); !batch && s.pipe != nil && !s.pipe.drain() {
		return errEnd // what follows batches waits for their answers
	}
	if _, ok := m.(*protocol.Hello); !ok && s.agency == 0 {
		return s.fail("receive_message", protocol.NewError(protocol.CodeUnexpected, "%s before hello", m.Kind()))
	}
	switch m := m.(type) {
	case *protocol.Hello:
		return s.hello(ctx, m)
	case *protocol.BatchFrame:
		return s.batch(m)
	case *protocol.Finish:
		return s.finish(ctx, m)
	case *protocol.WinnersRequest:
		return s.awaitWinners(ctx)
	case *protocol.Received:
		return s.received()
	default:
		return s.fail("receive_message", protocol.NewError(protocol.CodeUnexpected, "an agency does not send %s", m.Kind()))
	}
}

func (s *session) hello(ctx context.Context, m *protocol.Hello) error {
	if s.agency != 0 {
		return s.fail("hello", protocol.NewError(protocol.CodeUnexpected, "second hello on agency %d's session", s.agency))
	}
	if s.certAgency != 0 && m.Agency != s.certAgency {
		return s.fail("hello", protocol.NewError(protocol.CodeForbidden, "the certificate names agency %d, not agency %d", s.certAgency, m.Agency))
	}
	if s.c.cluster != nil {
		if serving, leader := s.c.cluster.Leader(); !serving {
			return s.fail("hello", &protocol.Error{Code: protocol.CodeNotLeader, Index: -1, Message: leader})
		}
	}
	if s.c.switching.Load() {
		return s.fail("hello", protocol.NewError(protocol.CodeUnavailable, "a new round is beginning: retry in a moment"))
	}
	if agencies := s.c.barrier().agencies; m.Agency < 1 || m.Agency > agencies {
		return s.fail("hello", protocol.NewError(protocol.CodeUnknownAgency, "agency %d is outside 1..%d", m.Agency, agencies))
	}
	replaced, disown, err := s.c.owners.acquire(ctx, m.Agency, s.raw, s.certAgency != 0)
	if errors.Is(err, errTLSAgency) {
		return s.fail("hello", protocol.NewError(protocol.CodeForbidden, "agency %d: %v", m.Agency, err))
	}
	if err != nil {
		return s.fail("hello", protocol.NewError(protocol.CodeUnavailable, "central shutting down"))
	}
	s.agency, s.mode, s.disown = m.Agency, m.Mode, disown
	st, err := s.c.store.Agency(s.agency)
	if err != nil {
		return s.internal("hello", "reading agency state", err)
	}
	takeover := ""
	if replaced {
		takeover = " | reemplaza: true"
	}
	s.c.log.Infof("action: hello | result: success | ip: %s | agencia: %d | modo: %s | confirmadas: %d | finalizada: %t%s",
		s.ip, s.agency, s.mode, st.Committed, st.Finished, takeover)
	w := &protocol.Welcome{Round: s.c.round.Load(), Committed: st.Committed, Finished: st.Finished}
	if st.HasDigest {
		w.Digest = st.Digest
	}
	if err := s.send(w); err != nil {
		return errEnd
	}
	return nil
}

func (s *session) finish(ctx context.Context, m *protocol.Finish) error {
	committed, finished, err := s.c.store.Committed(s.agency)
	if err != nil {
		return s.internal("agencia_finalizada", "reading agency state", err)
	}
	if committed != m.Total {
		return s.fail("agencia_finalizada", protocol.NewError(protocol.CodeIncomplete,
			"agency %d announced %d bets, %d are committed", s.agency, m.Total, committed))
	}
	if !finished {
		if err := s.c.store.Finish(s.agency, m.Total); err != nil {
			return s.internal("agencia_finalizada", "recording the finish", err)
		}
	}
	bar := s.c.barrier()
	n, start := bar.finish(s.agency)
	if start {
		s.c.startDraw(ctx)
	}
	s.c.log.Infof("action: agencia_finalizada | result: success | agencia: %d | apuestas: %d | finalizadas: %d | agencias: %d",
		s.agency, m.Total, n, bar.agencies)
	if err := s.send(&protocol.Finished{Count: n, Agencies: bar.agencies, Committed: committed}); err != nil {
		return errEnd
	}
	return nil
}

// awaitWinners waits for the draw and answers the agency's own winners; the
// agency's Received then ends the session. While it waits the session gives
// back its connection slot: the limit protects ingestion, and agencies that
// wait must not keep the others from sending their bets (the draw needs
// them all).
func (s *session) awaitWinners(ctx context.Context) error {
	if _, finished, err := s.c.store.Committed(s.agency); err != nil || !finished {
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeUnexpected,
			"agency %d has not finished: winners are answered after its finish", s.agency))
	}
	s.release()
	// A waiting session should cost little: with nothing buffered, its
	// reader and its encode buffer go, and a reader is made again when the
	// winners are out.
	if s.br == nil || s.br.Buffered() == 0 {
		s.r, s.br, s.out = nil, nil, nil
	}
	// While waiting, a read notices the agency leaving (or misbehaving).
	if !s.c.conns.armRead(s.raw, 0) {
		if s.fenced() {
			return errEnd
		}
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeUnavailable, "central shutting down"))
	}
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		var b [1]byte
		s.conn.Read(b[:])
	}()
	docs, err := s.c.barrier().wait(ctx, gone, s.agency)
	s.conn.SetReadDeadline(time.Unix(1, 0))
	<-gone
	if errors.Is(err, errGone) && s.fenced() {
		return errEnd
	}
	if err != nil {
		var perr *protocol.Error
		if errors.As(err, &perr) {
			return s.fail("consulta_ganadores", perr)
		}
		s.c.log.Warningf("action: consulta_ganadores | result: fail | ip: %s | agencia: %d | error: %s", s.ip, s.agency, logformat.Value(err.Error()))
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
	s.winners, s.sent = len(docs), true
	if s.r == nil {
		s.r = protocol.NewFrameReader(s.conn, protocol.MaxFrame)
	}
	return nil // the agency confirms with Received
}

// received records that the agency has its winners, durably, and ends the
// session with Goodbye. Until then the round cannot be archived.
func (s *session) received() error {
	if !s.sent {
		return s.fail("consulta_ganadores", protocol.NewError(protocol.CodeUnexpected, "received before any winners were sent"))
	}
	if err := s.c.store.Delivered(s.agency); err != nil {
		return s.internal("consulta_ganadores", "recording the delivery", err)
	}
	s.c.log.Infof("action: consulta_ganadores | result: success | agencia: %d | cant_ganadores: %d", s.agency, s.winners)
	s.send(&protocol.Goodbye{})
	return errEnd
}
