package protocol

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/loteria-nacional/tp0/lottery"
)

// A frame reader and a reader see the same stream alike: the same messages
// (a batch's bets decoded by Each equal Decode's) and, for a stream either
// refuses, the same error.
func FuzzFrameReader(f *testing.F) {
	for _, m := range allMessages() {
		b, err := Append(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(frameBytes(f, &Batch{Agency: 1, First: 3, Bets: []lottery.Bet{{Agency: 1, Document: "1", FirstName: "Ñandú", LastName: "", Number: 7574}}}))
	f.Add([]byte{Marker, byte(KindBatch), 0, 0, 0, 15, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // zero bets
	f.Fuzz(func(t *testing.T, data []byte) {
		plain := NewReader(bytes.NewReader(data), 0)
		lazy := NewFrameReader(bytes.NewReader(data), 0)
		var held []*BatchFrame
		defer func() {
			for _, fr := range held {
				fr.Release()
			}
		}()
		for range 8 {
			m, err := plain.Next()
			lm, lerr := lazy.Next()
			if (err == nil) != (lerr == nil) || err != nil && err.Error() != lerr.Error() {
				t.Fatalf("reader: %v; frame reader: %v", err, lerr)
			}
			if err != nil {
				return
			}
			fr, ok := lm.(*BatchFrame)
			if !ok {
				if !reflect.DeepEqual(m, lm) {
					t.Fatalf("reader %#v, frame reader %#v", m, lm)
				}
				continue
			}
			held = append(held, fr) // a frame outlives the next Next
			b := m.(*Batch)
			if fr.Agency != b.Agency || fr.First != b.First || fr.Len() != len(b.Bets) || !reflect.DeepEqual(fr.Bets(), normalize(b).(*Batch).Bets) {
				t.Fatalf("frame %d/%d %v, batch %d/%d %v", fr.Agency, fr.First, fr.Bets(), b.Agency, b.First, b.Bets)
			}
			again, err := Append(nil, fr)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := Append(nil, b)
			if !bytes.Equal(again, want) {
				t.Fatalf("a frame re-encodes as %x, its batch as %x", again, want)
			}
		}
	})
}

func frameBytes(tb testing.TB, m Message) []byte {
	tb.Helper()
	b, err := Append(nil, m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A frame's bets stay as read while later frames are read (its buffer is
// its own until Release), and Each stops at fn's first error.
func TestFrameOutlivesNext(t *testing.T) {
	t.Parallel()
	one := &Batch{Agency: 1, First: 0, Bets: []lottery.Bet{{Agency: 1, Document: "11", FirstName: "Ana", LastName: "Paz", Number: 1}}}
	two := &Batch{Agency: 1, First: 1, Bets: []lottery.Bet{{Agency: 1, Document: "22", FirstName: "Bea", LastName: "Sol", Number: 2}, {Agency: 1, Document: "33", FirstName: "Cy", LastName: "Rey", Number: 3}}}
	r := NewFrameReader(bytes.NewReader(append(frameBytes(t, one), frameBytes(t, two)...)), 0)
	m1, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after two frames: %v, want EOF", err)
	}
	f1, f2 := m1.(*BatchFrame), m2.(*BatchFrame)
	defer f1.Release()
	defer f2.Release()
	if got := f1.Bets(); !reflect.DeepEqual(got, one.Bets) {
		t.Fatalf("first frame after the second was read: %v", got)
	}
	if got := f2.Bets(); !reflect.DeepEqual(got, two.Bets) {
		t.Fatalf("second frame: %v", got)
	}
	stop := errors.New("stop")
	calls := 0
	if err := f2.Each(func(int, *lottery.Bet) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("Each: %v after %d calls, want stop after 1", err, calls)
	}
}

// Reframe takes AppendBatch's encoding of a checked frame as that frame,
// and refuses any other bytes (the caller parses those).
func TestReframe(t *testing.T) {
	t.Parallel()
	checked, err := ParseFrame(frameBytes(t, &Batch{Agency: 4, First: 9, Bets: []lottery.Bet{
		{Agency: 4, Document: "11", FirstName: "Ana", LastName: "Paz", Number: 1},
		{Agency: 4, Document: "22", FirstName: "Bea", LastName: "Sol", Number: 7574}}}))
	if err != nil {
		t.Fatal(err)
	}
	entry, err := AppendBatch(nil, checked.Agency, checked.First, checked)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := Reframe(entry, checked)
	if !ok {
		t.Fatal("AppendBatch's own encoding was refused")
	}
	want, err := ParseFrame(entry)
	if err != nil {
		t.Fatal(err)
	}
	if got.Agency != want.Agency || got.First != want.First || got.Len() != want.Len() || !bytes.Equal(got.bets, want.bets) {
		t.Fatalf("Reframe = %+v, ParseFrame = %+v", got, want)
	}
	for name, change := range map[string]func([]byte) []byte{
		"a bet's byte":  func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"the count":     func(b []byte) []byte { b[HeaderSize+batchHeaderSize-1]++; return b },
		"one byte less": func(b []byte) []byte { return b[:len(b)-1] },
		"the marker":    func(b []byte) []byte { b[0] = 0; return b },
	} {
		if _, ok := Reframe(change(bytes.Clone(entry)), checked); ok {
			t.Errorf("%s changed: taken as the checked frame", name)
		}
	}
}
