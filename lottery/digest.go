package lottery

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"hash"
)

// DigestSize is the size of a digest's sum.
const DigestSize = sha256.Size

// Digest is a running SHA-256 over bets in order, each in a canonical
// form, so that two parties holding the same bets in the same order agree
// on its sum. The central keeps one per agency over the bets it stored; an
// agency that resumes compares it with the digest of the rows it skips, so
// bets that someone else stored in its name cannot pass for its own.
type Digest struct {
	h   hash.Hash
	buf []byte
}

// NewDigest returns the digest of no bets.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

// Add adds b: its encoding (AppendEncoding).
func (d *Digest) Add(b *Bet) {
	d.buf = AppendEncoding(d.buf[:0], b)
	d.h.Write(d.buf)
}

// AppendEncoding appends the encoding of b a Digest hashes: number,
// birthdate and the three strings, each string with its length first, so
// no two different bets share an encoding.
func AppendEncoding(buf []byte, b *Bet) []byte {
	return AppendFieldsEncoding(buf, b.Number, b.Birthdate, b.Document, b.FirstName, b.LastName)
}

// AppendFieldsEncoding is AppendEncoding of a bet given by its fields, with
// its strings as bytes (a reader of stored rows need not make a Bet).
func AppendFieldsEncoding[S string | []byte](buf []byte, number int, birth Date, document, first, last S) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(number))
	buf = binary.BigEndian.AppendUint16(buf, uint16(birth.Year))
	buf = append(buf, byte(birth.Month), byte(birth.Day))
	for _, s := range [...]S{document, first, last} {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(s)))
		buf = append(buf, s...)
	}
	return buf
}

// AddEncoded adds bets already encoded by AppendEncoding, one after the
// other: the same digest as Add of each, with one hash write for many.
func (d *Digest) AddEncoded(enc []byte) { d.h.Write(enc) }

// Sum returns the digest of the bets added so far.
func (d *Digest) Sum() [DigestSize]byte {
	var s [DigestSize]byte
	d.h.Sum(s[:0])
	return s
}

// MarshalBinary saves the running state, to go on adding later.
func (d *Digest) MarshalBinary() ([]byte, error) {
	return d.h.(encoding.BinaryMarshaler).MarshalBinary()
}

// UnmarshalBinary restores a state saved with MarshalBinary.
func (d *Digest) UnmarshalBinary(b []byte) error {
	if d.h == nil {
		d.h = sha256.New()
	}
	if err := d.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		return fmt.Errorf("digest state: %w", err)
	}
	return nil
}
