package protocol

import (
	"bytes"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/loteria-nacional/tp0/lottery"
)

// BatchFrame is a batch as it came off the wire: checked whole (every
// bound, every string's UTF-8, nothing trailing: what Decode refuses, it
// refuses) but decoded one bet at a time (Each). A batch waiting for its
// commit then holds its bytes, about a third of what its decoded bets
// take. A Reader from NewFrameReader returns batches as *BatchFrame, in a
// pooled buffer that Release gives back.
type BatchFrame struct {
	Agency int
	First  uint64
	count  int
	bets   []byte  // the bets' encoding
	buf    *[]byte // the pooled buffer bets lives in; nil when not pooled
}

func (*BatchFrame) Kind() Kind { return KindBatch }

// Len is the number of bets.
func (f *BatchFrame) Len() int { return f.count }

// ParseBatch checks body, a batch frame's body, and returns it as a frame
// whose bets are read from body (not copied: body must outlive the frame).
func ParseBatch(body []byte) (*BatchFrame, error) {
	f := &BatchFrame{}
	d := decoder{buf: body}
	if err := f.decodeBody(&d); err != nil {
		return nil, err
	}
	if d.remaining() != 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrTrailing, d.remaining())
	}
	return f, nil
}

// decodeBody checks the body's bets without decoding them (for Reader).
func (f *BatchFrame) decodeBody(d *decoder) error {
	agency, first, n, err := batchHeader(d)
	if err != nil {
		return err
	}
	f.Agency, f.First = agency, first
	start := d.off
	for i := 0; i < n; i++ {
		d.u16() // number
		d.u16() // birth year, month, day
		d.u8()
		d.u8()
		for range 3 {
			sn := int(d.u8())
			at := d.off
			if b := d.take(sn); d.err == nil && !utf8.Valid(b) {
				d.err = fmt.Errorf("%w at offset %d", ErrUTF8, at)
			}
		}
		if d.err != nil {
			return fmt.Errorf("bet %d: %w", i, d.err)
		}
	}
	f.count, f.bets = n, d.buf[start:d.off]
	return nil
}

// appendBody encodes the frame again: its bytes as they came.
func (f *BatchFrame) appendBody(b []byte) ([]byte, error) {
	b = be.AppendUint32(b, uint32(f.Agency))
	b = be.AppendUint64(b, f.First)
	b = be.AppendUint16(b, uint16(f.count))
	return append(b, f.bets...), nil
}

// Each calls fn with each bet, in order, decoded into one Bet that is
// reused: the bet and its strings (which point into the frame's bytes) are
// valid only during the call, and not after Release. It stops at fn's
// first error and returns it.
func (f *BatchFrame) Each(fn func(i int, bet *lottery.Bet) error) error {
	var bet lottery.Bet
	bet.Agency = f.Agency
	b := f.bets
	str := func() string {
		n := int(b[0])
		s := b[1 : 1+n]
		b = b[1+n:]
		if n == 0 {
			return ""
		}
		return unsafe.String(&s[0], n)
	}
	for i := 0; i < f.count; i++ {
		bet.Number = int(be.Uint16(b))
		bet.Birthdate = lottery.Date{Year: int(be.Uint16(b[2:])), Month: time.Month(b[4]), Day: int(b[5])}
		b = b[6:]
		bet.Document = str()
		bet.FirstName = str()
		bet.LastName = str()
		if err := fn(i, &bet); err != nil {
			return err
		}
	}
	return nil
}

// Bets decodes every bet into a new slice (strings copied).
func (f *BatchFrame) Bets() []lottery.Bet {
	out := make([]lottery.Bet, 0, f.count)
	f.Each(func(_ int, bet *lottery.Bet) error {
		b := *bet
		b.Document, b.FirstName, b.LastName = string([]byte(b.Document)), string([]byte(b.FirstName)), string([]byte(b.LastName))
		out = append(out, b)
		return nil
	})
	return out
}

// Release gives the frame's buffer back to the reader's pool; the frame
// must not be used after. Release of a frame not from a pool does nothing.
func (f *BatchFrame) Release() {
	if f.buf != nil {
		framePool.Put(f.buf)
		f.buf, f.bets = nil, nil
	}
}

// framePool holds the buffers of batch frames of up to MaxBatchFrame bytes.
var framePool = sync.Pool{New: func() any {
	b := make([]byte, 0, MaxBatchFrame)
	return &b
}}

// AppendBatch appends the frame of a batch of agency's bets from first, as
// Append would for a Batch of them; a *BatchFrame's bets are copied as
// they came, not decoded.
func AppendBatch(b []byte, agency int, first uint64, bets lottery.Bets) ([]byte, error) {
	return Append(b, &batchOf{agency: agency, first: first, bets: bets})
}

// batchOf encodes a batch of any Bets (for AppendBatch only: it does not
// decode).
type batchOf struct {
	agency int
	first  uint64
	bets   lottery.Bets
}

func (*batchOf) Kind() Kind                { return KindBatch }
func (*batchOf) decodeBody(*decoder) error { return ErrKind }

func (m *batchOf) appendBody(b []byte) ([]byte, error) {
	n := m.bets.Len()
	if n > MaxBatchBets {
		return b, fmt.Errorf("%w: %d bets", ErrCount, n)
	}
	b = be.AppendUint32(b, uint32(m.agency))
	b = be.AppendUint64(b, m.first)
	b = be.AppendUint16(b, uint16(n))
	if f, ok := m.bets.(*BatchFrame); ok {
		return append(b, f.bets...), nil
	}
	err := m.bets.Each(func(_ int, bet *lottery.Bet) error {
		var err error
		b, err = AppendBet(b, bet)
		return err
	})
	return b, err
}

// batchHeaderSize is a batch body's fixed part: agency u32, first u64,
// count u16.
const batchHeaderSize = 4 + 8 + 2

// Reframe returns frame, AppendBatch's encoding of a batch whose bets are
// from (a frame that was checked), as a frame over frame's own bytes, with
// from's checked count: the bets are compared with from's, not checked
// again. It reports false when frame is not that encoding; the caller then
// parses it (ParseFrame).
func Reframe(frame []byte, from *BatchFrame) (*BatchFrame, bool) {
	off := HeaderSize + batchHeaderSize
	if len(frame) != off+len(from.bets) || frame[0] != Marker || Kind(frame[1]) != KindBatch || !bytes.Equal(frame[off:], from.bets) {
		return nil, false
	}
	body := frame[HeaderSize:]
	if int(be.Uint16(body[12:])) != from.count {
		return nil, false
	}
	return &BatchFrame{Agency: int(be.Uint32(body)), First: be.Uint64(body[4:]), count: from.count, bets: frame[off:]}, true
}

// ParseFrame checks frame, one whole batch frame (header included, as
// AppendBatch writes it), and returns it as ParseBatch does.
func ParseFrame(frame []byte) (*BatchFrame, error) {
	if len(frame) < HeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes", ErrTruncated, len(frame))
	}
	if frame[0] != Marker {
		return nil, fmt.Errorf("%w: 0x%02x", ErrMarker, frame[0])
	}
	if k := Kind(frame[1]); k != KindBatch {
		return nil, fmt.Errorf("%w: %s where a batch was expected", ErrKind, k)
	}
	body := frame[HeaderSize:]
	if n := be.Uint32(frame[2:]); uint64(n) != uint64(len(body)) {
		if uint64(n) > uint64(len(body)) {
			return nil, fmt.Errorf("%w: batch body of %d bytes, %d there", ErrTruncated, n, len(body))
		}
		return nil, fmt.Errorf("%w: %d bytes after the batch", ErrTrailing, uint64(len(body))-uint64(n))
	}
	f, err := ParseBatch(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KindBatch, err)
	}
	return f, nil
}
