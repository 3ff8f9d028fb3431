package protocol

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/loteria-nacional/tp0/lottery"
)

func sampleBets(agency int) []lottery.Bet {
	return []lottery.Bet{
		{Agency: agency, FirstName: "Santiago Lionel", LastName: "Lorca", Document: "30904465",
			Birthdate: lottery.Date{Year: 1999, Month: 3, Day: 17}, Number: 2201},
		{Agency: agency, FirstName: "Tomàs", LastName: "D'Elia, Álvarez", Document: "0012",
			Birthdate: lottery.Date{Year: 1980, Month: 1, Day: 1}, Number: 7574},
	}
}

// allMessages has one message of every kind, with non-zero fields.
func allMessages() []Message {
	return []Message{
		&Hello{Agency: 3, Mode: ModeCSV},
		&Hello{Agency: 1, Mode: ModeSingle},
		&Welcome{Round: 1764180000123456789, Committed: 1 << 40, Finished: true, Digest: [32]byte{0: 1, 31: 0xff}},
		&Batch{Agency: 7, First: 123456789, Bets: sampleBets(7)},
		&Ack{First: 10, Stored: 220, Committed: 230},
		&Finish{Total: 26936},
		&Finished{Count: 4, Agencies: 5, Committed: 26936},
		&WinnersRequest{},
		&Winners{Last: true, Documents: []string{"30904465", "1"}},
		&Winners{Last: false, Documents: []string{}},
		&Error{Code: CodeInvalidBet, Index: 17, Message: "number \"10000\" is not a number in 0..9999"},
		&Error{Code: CodeBusy, Index: -1, Message: "agency 1 has a live session"},
		&Received{},
		&Goodbye{},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range allMessages() {
		t.Run(m.Kind().String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, m); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if buf.Bytes()[0] != Marker {
				t.Fatalf("first byte 0x%02x, want marker", buf.Bytes()[0])
			}
			// One byte at a time: the reader must not depend on read sizes.
			got, err := NewReader(iotest.OneByteReader(&buf), 0).Next()
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
			}
		})
	}
}

func TestReader_EOFBetweenFrames(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := Write(&buf, &Finish{Total: 1}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf, 0)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func frame(kind Kind, body []byte) []byte {
	b := []byte{Marker, byte(kind)}
	b = be.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func batchBody(count int, bets ...[]byte) []byte {
	b := be.AppendUint32(nil, 1)
	b = be.AppendUint64(b, 0)
	b = be.AppendUint16(b, uint16(count))
	for _, bet := range bets {
		b = append(b, bet...)
	}
	return b
}

func wireBet(doc, first, last string) []byte {
	b := []byte{0x1d, 0x96, 0x07, 0xcf, 3, 17}
	for _, s := range []string{doc, first, last} {
		b = append(append(b, byte(len(s))), s...)
	}
	return b
}

func TestReader_Malformed(t *testing.T) {
	t.Parallel()
	good := frame(KindFinish, be.AppendUint64(nil, 5))
	tests := []struct {
		name  string
		input []byte
		max   int
		want  error
	}{
		{"BadMarker", append([]byte{'H'}, good[1:]...), 0, ErrMarker},
		{"UnknownKind", frame(Kind(0x7f), nil), 0, ErrKind},
		{"KindZero", frame(Kind(0), nil), 0, ErrKind},
		{"TruncatedHeader", good[:4], 0, ErrTruncated},
		{"TruncatedBody", good[:len(good)-1], 0, ErrTruncated},
		{"ShortBody", frame(KindFinish, []byte{1, 2, 3}), 0, ErrTruncated},
		{"LengthOverBound", []byte{Marker, byte(KindBatch), 0xff, 0xff, 0xff, 0xff}, 0, ErrTooLarge},
		{"LengthOverReaderMax", frame(KindBatch, make([]byte, 9000)), MaxBatchFrame, ErrTooLarge},
		{"CountOverBound", frame(KindBatch, batchBody(10000, make([]byte, 6))), 0, ErrCount},
		{"CountOverBody", frame(KindBatch, batchBody(2, wireBet("12345678", "abcdef", "ghijkl"))), 0, ErrTruncated},
		{"BadUTF8", frame(KindBatch, batchBody(1, wireBet("1", "a\xff", "b"))), 0, ErrUTF8},
		{"TrailingBytes", frame(KindFinish, make([]byte, 9)), 0, ErrTrailing},
		{"TrailingAfterBets", frame(KindBatch, append(batchBody(1, wireBet("1", "a", "b")), 0)), 0, ErrTrailing},
		{"BadMode", frame(KindHello, []byte{0, 0, 0, 1, 9}), 0, ErrMode},
		{"WinnersCountOverBody", frame(KindWinners, []byte{1, 0xff, 0xff, 1, '1'}), 0, ErrCount},
		{"ErrorMessageTruncated", frame(KindError, []byte{1, 0, 0, 0, 0, 0, 9, 'x'}), 0, ErrTruncated},
		{"EmptyBatch", frame(KindBatch, batchBody(0, nil)), 0, ErrEmptyBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.input), tt.max).Next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v is not an ErrMalformed", err)
			}
		})
	}
}

func TestBetSize(t *testing.T) {
	t.Parallel()
	for _, bet := range sampleBets(1) {
		b, err := AppendBet(nil, &bet)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != BetSize(&bet) {
			t.Fatalf("BetSize = %d, encoded %d bytes", BetSize(&bet), len(b))
		}
	}
	b, _ := Append(nil, &Batch{Agency: 1})
	if len(b) != BatchOverhead {
		t.Fatalf("empty batch frame is %d bytes, BatchOverhead %d", len(b), BatchOverhead)
	}
}

// TestConstants pins the wire constants: changing one breaks every peer.
func TestConstants(t *testing.T) {
	t.Parallel()
	pins := []struct {
		name      string
		got, want int
	}{
		{"HeaderSize", HeaderSize, 6},
		{"MaxFrame", MaxFrame, 65536},
		{"MaxBatchFrame", MaxBatchFrame, 8000},
		{"Marker", int(Marker), 0xA1},
		{"KindHello", int(KindHello), 1},
		{"KindError", int(KindError), 9},
		{"KindGoodbye", int(KindGoodbye), 11},
		{"CodeMalformed", int(CodeMalformed), 1},
		{"CodeInternal", int(CodeInternal), 11},
		{"CodeForbidden", int(CodeForbidden), 12},
		{"MaxBatchBets", MaxBatchBets, 7279},
	}
	for _, p := range pins {
		if p.got != p.want {
			t.Errorf("%s = %d, want %d", p.name, p.got, p.want)
		}
	}
	if Marker >= 0x20 && Marker < 0x7f {
		t.Error("Marker must not be printable ASCII")
	}
}

func TestError_Is(t *testing.T) {
	t.Parallel()
	err := error(NewError(CodeGap, "batch starts at %d", 9))
	if !errors.Is(err, &Error{Code: CodeGap}) {
		t.Fatal("errors.Is does not match same code")
	}
	if errors.Is(err, &Error{Code: CodeBusy}) {
		t.Fatal("errors.Is matches another code")
	}
}

func TestAppend_TooLarge(t *testing.T) {
	t.Parallel()
	docs := make([]string, 300)
	for i := range docs {
		docs[i] = string(bytes.Repeat([]byte{'9'}, 255))
	}
	if _, err := Append(nil, &Winners{Documents: docs}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

// FuzzReader feeds arbitrary bytes, split in two reads at every point, to the
// reader. Seeds are valid frames of every kind. Invariants: no panic, and a
// decoded message re-encodes to a frame that decodes to the same message.
func FuzzReader(f *testing.F) {
	for _, m := range allMessages() {
		b, err := Append(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint16(len(b)/2))
	}
	f.Add([]byte("hello\n"), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		cut := int(split) % (len(data) + 1)
		r := NewReader(io.MultiReader(bytes.NewReader(data[:cut]), bytes.NewReader(data[cut:])), 0)
		for range 8 {
			m, err := r.Next()
			if err != nil {
				return
			}
			b, err := Append(nil, m)
			if err != nil {
				// Only messages that no encoder would produce may fail here.
				continue
			}
			m2, err := NewReader(bytes.NewReader(b), 0).Next()
			if err != nil {
				t.Fatalf("re-encoded %s does not decode: %v", m.Kind(), err)
			}
			if !reflect.DeepEqual(normalize(m), normalize(m2)) {
				t.Fatalf("re-encode changed message:\n%#v\n%#v", m, m2)
			}
		}
	})
}

// normalize copies m so that reused reader buffers don't alias.
func normalize(m Message) Message {
	if b, ok := m.(*Batch); ok {
		c := *b
		c.Bets = append([]lottery.Bet(nil), b.Bets...)
		return &c
	}
	return m
}
