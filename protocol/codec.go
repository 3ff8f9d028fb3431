package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

var be = binary.BigEndian

// Reader reads messages from a stream. It reuses its buffers: a message returned
// by Next is valid until the following call to Next.
type Reader struct {
	r     io.Reader
	max   int
	hdr   [HeaderSize]byte
	body  []byte
	batch Batch
	lazy  bool // batches come as *BatchFrame (NewFrameReader)
}

// NewReader returns a Reader that accepts frames of up to max bytes, header
// included; max <= 0 or over MaxFrame means MaxFrame.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 || max > MaxFrame {
		max = MaxFrame
	}
	return &Reader{r: r, max: max}
}

// NewFrameReader is NewReader, but its batches come as *BatchFrame: checked
// whole, their bets decoded one at a time, in a buffer of their own that
// stays valid after the next call to Next, until the frame's Release. A
// server holding many sessions' batches while they wait for a commit holds
// their bytes and nothing else, and a session reading holds no buffer.
func NewFrameReader(r io.Reader, max int) *Reader {
	fr := NewReader(r, max)
	fr.lazy = true
	return fr
}

// Next reads one whole frame and decodes it. It returns io.EOF when the stream
// ends cleanly between frames, and an error wrapping one of the package's
// sentinel errors for a malformed frame.
func (r *Reader) Next() (Message, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:1]); err != nil {
		return nil, err // io.EOF between frames, or a transport error
	}
	if r.hdr[0] != Marker {
		return nil, fmt.Errorf("%w: 0x%02x", ErrMarker, r.hdr[0])
	}
	if _, err := io.ReadFull(r.r, r.hdr[1:]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrTruncated, noEOF(err))
	}
	kind := Kind(r.hdr[1])
	n := be.Uint32(r.hdr[2:])
	if uint64(n) > uint64(r.max-HeaderSize) {
		return nil, fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrTooLarge, kind, n, r.max-HeaderSize)
	}
	if kind == KindBatch && r.lazy {
		return r.frame(n)
	}
	m := r.message(kind)
	if m == nil {
		return nil, fmt.Errorf("%w: 0x%02x", ErrKind, byte(kind))
	}
	if cap(r.body) < int(n) {
		r.body = make([]byte, n, max(int(n), 512))
	}
	r.body = r.body[:n]
	if _, err := io.ReadFull(r.r, r.body); err != nil {
		return nil, fmt.Errorf("%w: %s body: %w", ErrTruncated, kind, noEOF(err))
	}
	if err := Decode(m, r.body); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return m, nil
}

// frame reads a batch's body of n bytes into a buffer of its own (pooled
// when the batch is no longer than agencies send) and checks it.
func (r *Reader) frame(n uint32) (*BatchFrame, error) {
	var buf *[]byte
	var body []byte
	if int(n) <= MaxBatchFrame-HeaderSize {
		buf = framePool.Get().(*[]byte)
		body = (*buf)[:n]
	} else {
		body = make([]byte, n)
	}
	f, err := r.readFrame(body)
	if err != nil {
		if buf != nil {
			framePool.Put(buf)
		}
		return nil, err
	}
	f.buf = buf
	return f, nil
}

func (r *Reader) readFrame(body []byte) (*BatchFrame, error) {
	if _, err := io.ReadFull(r.r, body); err != nil {
		return nil, fmt.Errorf("%w: %s body: %w", ErrTruncated, KindBatch, noEOF(err))
	}
	f, err := ParseBatch(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KindBatch, err)
	}
	return f, nil
}

// message returns the message to decode into, reusing the batch.
func (r *Reader) message(k Kind) Message {
	if k == KindBatch {
		return &r.batch
	}
	return newMessage(k)
}

// noEOF turns a bare io.EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Decode decodes body, the body of a frame of m's kind, into m. All strings
// of the message share one allocation.
func Decode(m Message, body []byte) error {
	d := decoder{buf: body}
	if err := m.decodeBody(&d); err != nil {
		return err
	}
	if d.remaining() != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailing, d.remaining())
	}
	return nil
}

// Append appends m's whole frame, header included, to b.
func Append(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, Marker, byte(m.Kind()), 0, 0, 0, 0)
	b, err := m.appendBody(b)
	if err != nil {
		return b[:start], fmt.Errorf("encode %s: %w", m.Kind(), err)
	}
	n := len(b) - start - HeaderSize
	if n > MaxFrame-HeaderSize {
		return b[:start], fmt.Errorf("encode %s: %w: body of %d bytes", m.Kind(), ErrTooLarge, n)
	}
	be.PutUint32(b[start+2:], uint32(n))
	return b, nil
}

// Write encodes m as one frame and writes all of it to w.
func Write(w io.Writer, m Message) error {
	b, err := Append(make([]byte, 0, 64), m)
	if err != nil {
		return err
	}
	_, err = w.Write(b) // an io.Writer writes all of b or returns an error
	return err
}

// decoder reads fixed-width fields off a body, remembering the first error.
// Strings are sliced from one string copy of the body (one allocation per
// message, none per field).
type decoder struct {
	buf  []byte
	off  int
	text string // lazily made string copy of buf
	err  error
}

func (d *decoder) remaining() int { return len(d.buf) - d.off }

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > d.remaining() {
		d.err = fmt.Errorf("%w: need %d bytes at offset %d, have %d", ErrTruncated, n, d.off, d.remaining())
		return nil
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) u8() byte {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if b := d.take(2); b != nil {
		return be.Uint16(b)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return be.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return be.Uint64(b)
	}
	return 0
}

func (d *decoder) bytes(n int) []byte { return d.take(n) }

// str reads a length-prefixed UTF-8 string.
func (d *decoder) str() string {
	n := int(d.u8())
	start := d.off
	b := d.take(n)
	if d.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		d.err = fmt.Errorf("%w at offset %d", ErrUTF8, start)
		return ""
	}
	if d.text == "" {
		d.text = string(d.buf)
	}
	return d.text[start : start+n]
}
