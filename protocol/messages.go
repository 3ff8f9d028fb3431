package protocol

import (
	"fmt"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
)

// Message is one protocol message. The concrete types are the pointer types
// below; decode with Reader.Next and encode with Write or Append.
type Message interface {
	Kind() Kind
	appendBody(b []byte) ([]byte, error)
	decodeBody(d *decoder) error
}

// Hello opens an agency's session.
type Hello struct {
	Agency int
	Mode   Mode
}

// Welcome answers Hello with the agency's resume point.
type Welcome struct {
	Round     uint64 // identifies the round; it changes when a new round starts
	Committed uint64 // bets of this agency durably stored
	Finished  bool   // the agency has already finished sending
	// Digest is the lottery.Digest sum of the agency's committed bets, all
	// zero when the central has none (bets stored by an older version).
	Digest [lottery.DigestSize]byte
}

// Batch carries bets of one agency, the first being bet First of its stream.
// Every bet's Agency is set to Batch.Agency on decode.
type Batch struct {
	Agency int
	First  uint64
	Bets   []lottery.Bet
}

// Ack acknowledges a committed batch.
type Ack struct {
	First     uint64 // First of the acknowledged batch
	Stored    int    // how many of its bets were new and are now stored
	Committed uint64 // the agency's committed total after the batch
}

// Finish says the agency has sent its Total bets and will send no more.
type Finish struct {
	Total uint64
}

// Finished acknowledges Finish once it is durable.
type Finished struct {
	Count     int    // agencies finished so far
	Agencies  int    // agencies the draw waits for
	Committed uint64 // the agency's bets stored, which its finish recorded
}

// WinnersRequest asks for the agency's winners; the answer waits for the draw.
type WinnersRequest struct{}

// Winners carries documents of the agency's winners. A long list spans several
// messages; the last one has Last set.
type Winners struct {
	Last      bool
	Documents []string
}

// Received confirms that the agency got all its winners. The central records
// the delivery durably, then answers Goodbye.
type Received struct{}

// Goodbye ends a session: the delivery of the winners is recorded.
type Goodbye struct{}

// Kind implementations.
func (*Hello) Kind() Kind          { return KindHello }
func (*Welcome) Kind() Kind        { return KindWelcome }
func (*Batch) Kind() Kind          { return KindBatch }
func (*Ack) Kind() Kind            { return KindAck }
func (*Finish) Kind() Kind         { return KindFinish }
func (*Finished) Kind() Kind       { return KindFinished }
func (*WinnersRequest) Kind() Kind { return KindWinnersRequest }
func (*Winners) Kind() Kind        { return KindWinners }
func (*Error) Kind() Kind          { return KindError }
func (*Received) Kind() Kind       { return KindReceived }
func (*Goodbye) Kind() Kind        { return KindGoodbye }

// newMessage returns an empty message of kind k, or nil for an unknown kind.
func newMessage(k Kind) Message {
	switch k {
	case KindHello:
		return &Hello{}
	case KindWelcome:
		return &Welcome{}
	case KindBatch:
		return &Batch{}
	case KindAck:
		return &Ack{}
	case KindFinish:
		return &Finish{}
	case KindFinished:
		return &Finished{}
	case KindWinnersRequest:
		return &WinnersRequest{}
	case KindWinners:
		return &Winners{}
	case KindError:
		return &Error{}
	case KindReceived:
		return &Received{}
	case KindGoodbye:
		return &Goodbye{}
	}
	return nil
}

func (m *Hello) appendBody(b []byte) ([]byte, error) {
	b = be.AppendUint32(b, uint32(m.Agency))
	return append(b, byte(m.Mode)), nil
}

func (m *Hello) decodeBody(d *decoder) error {
	m.Agency = int(d.u32())
	m.Mode = Mode(d.u8())
	if d.err == nil && m.Mode != ModeCSV && m.Mode != ModeSingle {
		return fmt.Errorf("%w: %d", ErrMode, m.Mode)
	}
	return d.err
}

func (m *Welcome) appendBody(b []byte) ([]byte, error) {
	b = be.AppendUint64(b, m.Round)
	b = append(be.AppendUint64(b, m.Committed), boolByte(m.Finished))
	return append(b, m.Digest[:]...), nil
}

func (m *Welcome) decodeBody(d *decoder) error {
	m.Round = d.u64()
	m.Committed = d.u64()
	m.Finished = d.u8() != 0
	copy(m.Digest[:], d.bytes(len(m.Digest)))
	return d.err
}

func (m *Batch) appendBody(b []byte) ([]byte, error) {
	if len(m.Bets) > MaxBatchBets {
		return b, fmt.Errorf("%w: %d bets", ErrCount, len(m.Bets))
	}
	b = be.AppendUint32(b, uint32(m.Agency))
	b = be.AppendUint64(b, m.First)
	b = be.AppendUint16(b, uint16(len(m.Bets)))
	var err error
	for i := range m.Bets {
		if b, err = AppendBet(b, &m.Bets[i]); err != nil {
			return b, err
		}
	}
	return b, nil
}

// batchHeader reads a batch body's agency, first offset and bet count, the
// count bounded by what the rest of the body can hold (before anything is
// allocated for it).
func batchHeader(d *decoder) (agency int, first uint64, n int, err error) {
	agency, first, n = int(d.u32()), d.u64(), int(d.u16())
	switch {
	case d.err != nil:
		return 0, 0, 0, d.err
	case n == 0:
		return 0, 0, 0, ErrEmptyBatch // acknowledging it would cost a commit for nothing
	case n > d.remaining()/betFixed:
		return 0, 0, 0, fmt.Errorf("%w: %d bets in %d bytes", ErrCount, n, d.remaining())
	}
	return agency, first, n, nil
}

func (m *Batch) decodeBody(d *decoder) error {
	agency, first, n, err := batchHeader(d)
	if err != nil {
		return err
	}
	m.Agency, m.First = agency, first
	if cap(m.Bets) < n {
		m.Bets = make([]lottery.Bet, n)
	}
	m.Bets = m.Bets[:n]
	for i := range m.Bets {
		bet := &m.Bets[i]
		bet.Agency = m.Agency
		bet.Number = int(d.u16())
		bet.Birthdate.Year = int(d.u16())
		bet.Birthdate.Month = time.Month(d.u8())
		bet.Birthdate.Day = int(d.u8())
		bet.Document = d.str()
		bet.FirstName = d.str()
		bet.LastName = d.str()
		if d.err != nil {
			return fmt.Errorf("bet %d: %w", i, d.err)
		}
	}
	return nil
}

// AppendBet appends the wire encoding of bet to b.
func AppendBet(b []byte, bet *lottery.Bet) ([]byte, error) {
	if len(bet.Document) > 255 || len(bet.FirstName) > 255 || len(bet.LastName) > 255 {
		return b, ErrStringLen
	}
	b = be.AppendUint16(b, uint16(bet.Number))
	b = be.AppendUint16(b, uint16(bet.Birthdate.Year))
	b = append(b, byte(bet.Birthdate.Month), byte(bet.Birthdate.Day))
	b = appendStr(b, bet.Document)
	b = appendStr(b, bet.FirstName)
	return appendStr(b, bet.LastName), nil
}

// BetSize is the number of bytes bet takes inside a batch body.
func BetSize(bet *lottery.Bet) int {
	return betFixed + len(bet.Document) + len(bet.FirstName) + len(bet.LastName)
}

// BatchOverhead is the size of a batch frame with no bets: header and fixed fields.
const BatchOverhead = HeaderSize + batchFixed

func (m *Ack) appendBody(b []byte) ([]byte, error) {
	b = be.AppendUint64(b, m.First)
	b = be.AppendUint16(b, uint16(m.Stored))
	return be.AppendUint64(b, m.Committed), nil
}

func (m *Ack) decodeBody(d *decoder) error {
	m.First = d.u64()
	m.Stored = int(d.u16())
	m.Committed = d.u64()
	return d.err
}

func (m *Finish) appendBody(b []byte) ([]byte, error) {
	return be.AppendUint64(b, m.Total), nil
}

func (m *Finish) decodeBody(d *decoder) error {
	m.Total = d.u64()
	return d.err
}

func (m *Finished) appendBody(b []byte) ([]byte, error) {
	b = be.AppendUint32(b, uint32(m.Count))
	b = be.AppendUint32(b, uint32(m.Agencies))
	return be.AppendUint64(b, m.Committed), nil
}

func (m *Finished) decodeBody(d *decoder) error {
	m.Count = int(d.u32())
	m.Agencies = int(d.u32())
	m.Committed = d.u64()
	return d.err
}

func (*WinnersRequest) appendBody(b []byte) ([]byte, error) { return b, nil }
func (*WinnersRequest) decodeBody(d *decoder) error         { return d.err }
func (*Received) appendBody(b []byte) ([]byte, error)       { return b, nil }
func (*Received) decodeBody(d *decoder) error               { return d.err }
func (*Goodbye) appendBody(b []byte) ([]byte, error)        { return b, nil }
func (*Goodbye) decodeBody(d *decoder) error                { return d.err }

func (m *Winners) appendBody(b []byte) ([]byte, error) {
	if len(m.Documents) > 0xFFFF {
		return b, fmt.Errorf("%w: %d documents", ErrCount, len(m.Documents))
	}
	b = append(b, boolByte(m.Last))
	b = be.AppendUint16(b, uint16(len(m.Documents)))
	for _, doc := range m.Documents {
		if len(doc) > 255 {
			return b, ErrStringLen
		}
		b = appendStr(b, doc)
	}
	return b, nil
}

func (m *Winners) decodeBody(d *decoder) error {
	m.Last = d.u8() != 0
	n := int(d.u16())
	if d.err != nil {
		return d.err
	}
	if n > d.remaining() { // each document takes at least its length byte
		return fmt.Errorf("%w: %d documents in %d bytes", ErrCount, n, d.remaining())
	}
	m.Documents = make([]string, n)
	for i := range m.Documents {
		m.Documents[i] = d.str()
	}
	return d.err
}

// WinnersPerFrame is how many documents of up to 255 bytes always fit in one frame.
const WinnersPerFrame = (MaxFrame - HeaderSize - 3) / 256

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendStr(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}
