package protocol

import (
	"errors"
	"fmt"
)

// Code is the reason in an Error reply, from a closed set shared by both ends.
type Code byte

// The error codes. Fatal codes are followed by the central closing the
// connection; after a recoverable one the session goes on.
const (
	CodeMalformed     Code = iota + 1 // the frame could not be decoded (fatal)
	CodeUnexpected                    // the message is out of order, e.g. no hello first (fatal)
	CodeUnknownAgency                 // the agency id is outside 1..AGENCIES or not the session's (fatal)
	CodeBusy                          // another session of the same agency is live (fatal)
	CodeInvalidBet                    // a bet failed validation; nothing of the batch was stored
	CodeGap                           // the batch starts past the committed bets: some are missing
	CodeIncomplete                    // finish announced more bets than are committed
	CodeFinished                      // bets arrived after the agency finished (fatal)
	CodeUnavailable                   // the central is shutting down or full (fatal)
	CodeTimeout                       // the central gave up waiting (fatal)
	CodeInternal                      // the central failed to store (fatal)
)

var codeNames = [...]string{"", "malformed", "unexpected", "unknown_agency", "busy", "invalid_bet",
	"gap", "incomplete", "finished", "unavailable", "timeout", "internal"}

func (c Code) String() string {
	if int(c) < len(codeNames) && c != 0 {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", byte(c))
}

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
