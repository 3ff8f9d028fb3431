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

// Add adds b: number, birthdate and the three strings, each string with its
// length first, so no two different bets share an encoding.
func (d *Digest) Add(b *Bet) {
	buf := binary.BigEndian.AppendUint16(d.buf[:0], uint16(b.Number))
	buf = binary.BigEndian.AppendUint16(buf, uint16(b.Birthdate.Year))
	buf = append(buf, byte(b.Birthdate.Month), byte(b.Birthdate.Day))
	for _, s := range [...]string{b.Document, b.FirstName, b.LastName} {
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(s)))
		buf = append(buf, s...)
	}
	d.h.Write(buf)
	d.buf = buf
}

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
