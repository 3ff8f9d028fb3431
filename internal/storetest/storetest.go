// Package storetest makes store files for tests of the packages above the
// store: damaged ones, as an unlucky operator finds them.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// DamagedRow writes a store whose agencies 1..agencies have each sent
// 1,000 bets and finished (the draw is due at the next start), then turns
// the last digit of one stored row's number into a letter, as a flipped
// bit on the disk would: the file's pages are sound and the round's state
// reads, the draw's scan does not. It returns the file's path. (Junk in a
// page is refused when the file is opened.)
func DamagedRow(tb testing.TB, agencies int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for a := 1; a <= agencies; a++ {
		if _, err := s.Append(a, 0, lottery.BetSlice(testkit.Bets(a, 1000))); err != nil {
			tb.Fatal(err)
		}
		if err := s.Finish(a, 1000); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	// Written through bbolt, so that the pages stay sound: the flip is in
	// the value, where bbolt checks nothing.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("bets"))
		k, v := b.Cursor().First()
		row, _, _ := bytes.Cut(v, []byte("\n"))
		flipped := bytes.Clone(v)
		flipped[len(row)-1] = 'x'
		return b.Put(bytes.Clone(k), flipped)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return path
}

// Change changes what the closed store at path holds, through bbolt so
// that its pages stay sound, as a flipped bit in a value would: "row"
// turns the first digit of the first stored row's document into another,
// "sum" flips a bit of the first batch's checksum record, "swap" swaps the
// first two batches (with their records).
func Change(tb testing.TB, path, what string) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		bets := tx.Bucket([]byte("bets"))
		k1, v1 := bets.Cursor().First()
		switch what {
		case "row":
			v := bytes.Clone(v1)
			i := bytes.IndexByte(v, ',') + 1
			i += bytes.IndexByte(v[i:], ',') + 1
			i += bytes.IndexByte(v[i:], ',') + 1 // the document
			v[i] = '0' + (v[i]-'0'+1)%10
			return bets.Put(bytes.Clone(k1), v)
		case "sum": // the last byte of its checksum record, last in the value
			v := bytes.Clone(v1)
			v[len(v)-1] ^= 1
			return bets.Put(bytes.Clone(k1), v)
		case "swap":
			c := bets.Cursor()
			k1, v1 := c.First()
			k1, v1 = bytes.Clone(k1), bytes.Clone(v1)
			k2, v2 := c.Next()
			k2, v2 = bytes.Clone(k2), bytes.Clone(v2)
			return errors.Join(bets.Put(k1, v2), bets.Put(k2, v1))
		}
		return fmt.Errorf("storetest.Change: %q", what)
	})
	if err != nil {
		tb.Fatal(err)
	}
}
