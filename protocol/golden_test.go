package protocol

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/loteria-nacional/tp0/lottery"
)

// unhex turns spaced hex (as the tables of doc.go are read) into bytes.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// One frame per message kind, its bytes written by hand from doc.go's
// tables (marker a1, kind, u32 body length, then the body): the encoder and
// the decoder must both agree with the document, not only with each other.
func TestGolden(t *testing.T) {
	t.Parallel()
	digest := [32]byte{}
	digest[0], digest[31] = 0xde, 0xad
	for _, tt := range []struct {
		name  string
		msg   Message
		bytes string
	}{
		{"Hello", &Hello{Agency: 3, Mode: ModeCSV}, "a1 01 00000005  00000003 01"},
		{"Welcome", &Welcome{Round: 0x0102030405060708, Committed: 1333, Finished: true, Digest: digest},
			"a1 02 00000031  0102030405060708 0000000000000535 01 de" + strings.Repeat("00", 30) + "ad"},
		{"Batch", &Batch{Agency: 1, First: 2, Bets: []lottery.Bet{{Agency: 1, FirstName: "Ana", LastName: "Paz",
			Document: "30904465", Birthdate: lottery.Date{Year: 1999, Month: 3, Day: 17}, Number: 7574}}},
			"a1 03 00000025  00000001 0000000000000002 0001" +
				" 1d96 07cf 03 11  08 3330393034343635  03 416e61  03 50617a"},
		{"Ack", &Ack{First: 2, Stored: 1, Committed: 3}, "a1 04 00000012  0000000000000002 0001 0000000000000003"},
		{"Finish", &Finish{Total: 78697}, "a1 05 00000008  0000000000013369"},
		{"Finished", &Finished{Count: 2, Agencies: 5, Committed: 9}, "a1 06 00000010  00000002 00000005 0000000000000009"},
		{"WinnersRequest", &WinnersRequest{}, "a1 07 00000000"},
		{"Winners", &Winners{Last: true, Documents: []string{"30904465", "1"}}, "a1 08 0000000e  01 0002 08 3330393034343635 01 31"},
		{"Error", &Error{Code: CodeGap, Index: -1, Message: "gap"}, "a1 09 0000000a  " + hex.EncodeToString([]byte{byte(CodeGap)}) + " ffffffff 0003 676170"},
		{"ErrorWithIndex", &Error{Code: CodeInvalidBet, Index: 4, Message: "x"}, "a1 09 00000008  " + hex.EncodeToString([]byte{byte(CodeInvalidBet)}) + " 00000004 0001 78"},
		{"Received", &Received{}, "a1 0a 00000000"},
		{"Goodbye", &Goodbye{}, "a1 0b 00000000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.bytes)
			got, err := Append(nil, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n %x\nwant\n %x", got, want)
			}
			m, err := NewReader(bytes.NewReader(want), 0).Next()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, tt.msg) {
				t.Fatalf("decoded %#v, want %#v", m, tt.msg)
			}
		})
	}
}
