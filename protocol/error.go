package protocol

import (
	"errors"
	"fmt"
)

// Code is the reason in an Error reply, from a closed set shared by both ends.
type Code byte

// The error codes. What each means, and what each end does after it, is the
// table codes below: the only place that policy is written.
const (
	CodeMalformed     Code = iota + 1 // the frame could not be decoded
	CodeUnexpected                    // the message is out of order, e.g. no hello first
	CodeUnknownAgency                 // the agency id is outside 1..AGENCIES or not the session's
	CodeBusy                          // another session of the agency is live (no longer sent: a new session takes over)
	CodeInvalidBet                    // a bet failed validation; nothing of the batch was stored
	CodeGap                           // the batch starts past the committed bets: some are missing
	CodeIncomplete                    // finish announced more bets than are committed
	CodeFinished                      // bets arrived after the agency finished, or after the draw
	CodeUnavailable                   // the central is shutting down or full
	CodeTimeout                       // the central gave up waiting for a frame
	CodeInternal                      // the central failed to store
	CodeForbidden                     // the agency's certificate does not allow what it asked
	CodeReplaced                      // a newer session of the same agency took over this one
	CodeNotLeader                     // this node of a cluster does not lead: the message is the leader's address, or empty
)

// CodeInfo is the policy of one error code.
type CodeInfo struct {
	Name    string
	Meaning string
	// Fatal: the central closes the connection after sending it; otherwise
	// the session goes on.
	Fatal bool
	// Retryable: an agency that receives it reconnects and tries again;
	// otherwise it gives up.
	Retryable bool
}

// codes is the error policy, indexed by code.
var codes = [...]CodeInfo{
	CodeMalformed:     {"malformed", "the frame could not be decoded", true, false},
	CodeUnexpected:    {"unexpected", "out of order (no hello, winners before finish, …)", true, false},
	CodeUnknownAgency: {"unknown_agency", "id outside 1..AGENCIES, or a batch for another agency", true, false},
	CodeBusy:          {"busy", "another session of this agency is live (no longer sent: a new session takes over)", true, true},
	CodeInvalidBet:    {"invalid_bet", "a bet failed validation (index and reason given); nothing stored", false, false},
	CodeGap:           {"gap", "the batch starts past the committed bets", false, true},
	CodeIncomplete:    {"incomplete", "finish announced more bets than are committed", false, true},
	CodeFinished:      {"finished", "bets after the agency's finish, or after the draw", true, false},
	CodeUnavailable:   {"unavailable", "the central is shutting down or at its connection limit", true, true},
	CodeTimeout:       {"timeout", "no whole frame within IDLE_TIMEOUT", true, false},
	CodeInternal:      {"internal", "the central failed to store", true, true},
	CodeForbidden:     {"forbidden", "the agency's certificate names another agency, or TLS is required", true, false},
	CodeReplaced:      {"replaced", "a newer session of the same agency took over this one", true, true},
	CodeNotLeader:     {"not_leader", "this node of a cluster does not lead; the message is the leader's address (empty: unknown)", true, true},
}

// Codes lists every defined code in order.
func Codes() []Code {
	out := make([]Code, 0, len(codes)-1)
	for c := CodeMalformed; int(c) < len(codes); c++ {
		out = append(out, c)
	}
	return out
}

// Info returns c's policy. An unknown code (from a newer peer) is fatal and
// not retryable.
func (c Code) Info() CodeInfo {
	if c != 0 && int(c) < len(codes) {
		return codes[c]
	}
	return CodeInfo{Name: fmt.Sprintf("code(%d)", byte(c)), Meaning: "unknown", Fatal: true}
}

func (c Code) String() string { return c.Info().Name }

// Fatal reports whether the central closes the connection after c.
func (c Code) Fatal() bool { return c.Info().Fatal }

// Retryable reports whether an agency retries after c.
func (c Code) Retryable() bool { return c.Info().Retryable }

// Error is the error reply, and also a Go error: an agency returns the Error it
// received, and callers test its code with errors.Is(err, &Error{Code: c}) or
// errors.As.
type Error struct {
	Code    Code
	Index   int // the offending bet's index in its batch, or -1
	Message string
}

// NewError returns an Error with no bet index.
func NewError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Index: -1, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%s: bet %d: %s", e.Code, e.Index, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is matches another *Error with the same code, so errors.Is tests a code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// maxMessage bounds an Error's message so a reply always fits a frame.
const maxMessage = 1024

func (m *Error) appendBody(b []byte) ([]byte, error) {
	msg := m.Message
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	idx := uint32(noIndex)
	if m.Index >= 0 {
		idx = uint32(m.Index)
	}
	b = append(b, byte(m.Code))
	b = be.AppendUint32(b, idx)
	b = be.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...), nil
}

func (m *Error) decodeBody(d *decoder) error {
	m.Code = Code(d.u8())
	idx := d.u32()
	n := int(d.u16())
	if d.err == nil && n > maxMessage {
		return fmt.Errorf("%w: error message of %d bytes, limit %d", ErrTooLarge, n, maxMessage)
	}
	m.Message = string(d.bytes(n))
	m.Index = -1
	if idx != noIndex {
		m.Index = int(idx)
	}
	return d.err
}
