package protocol

import "errors"

// Frame sizes. HeaderSize = markerSize + kindSize + lengthSize.
const (
	markerSize = 1
	kindSize   = 1
	lengthSize = 4
	// HeaderSize is the size of every frame header.
	HeaderSize = markerSize + kindSize + lengthSize
	// MaxFrame is the largest frame, header included, that a reader accepts.
	MaxFrame = 64 << 10
	// MaxBatchFrame is the largest batch frame, header included, that an
	// agency sends: 8,000 bytes, so a batch stays under "8 kB" whether one
	// reads it as 8,000 or as 8,192 bytes.
	MaxBatchFrame = 8000
	// Marker is the first byte of every frame: protocol version 1. It is not
	// printable ASCII, so a netcat line is told apart from a frame by its first byte.
	Marker byte = 0xA1
	// ReplicaMarker is the first byte of a replica's connection to another
	// on the same port (package cluster), inside TLS when TLS is on.
	ReplicaMarker byte = 0xA2

	batchFixed = 4 + 8 + 2 // agency, first, count
	// betFixed is the size of a bet with three empty strings; it bounds counts.
	betFixed = 2 + 2 + 1 + 1 + 1 + 1 + 1
	// MaxBatchBets is the most bets one frame can carry at all.
	MaxBatchBets = (MaxFrame - HeaderSize - batchFixed) / betFixed
	// noIndex stands for "no bet index" in an Error body.
	noIndex = 0xFFFFFFFF
)

// Kind is the type of a message, the second byte of its frame.
type Kind byte

// The kinds of message.
const (
	KindHello Kind = iota + 1
	KindWelcome
	KindBatch
	KindAck
	KindFinish
	KindFinished
	KindWinnersRequest
	KindWinners
	KindError
	KindReceived
	KindGoodbye
)

var kindNames = [...]string{"", "hello", "welcome", "batch", "ack", "finish", "finished", "winners_request", "winners", "error",
	"received", "goodbye"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Mode says how an agency sends its bets.
type Mode byte

// The agency modes.
const (
	ModeCSV    Mode = 1 // a stream of bets read from a CSV file
	ModeSingle Mode = 2 // one bet given by environment variables
)

func (m Mode) String() string {
	switch m {
	case ModeCSV:
		return "csv"
	case ModeSingle:
		return "single"
	}
	return "unknown"
}

// ErrMalformed is the parent of every decoding error: errors.Is(err,
// ErrMalformed) holds for any input that is not a valid frame, whichever
// sentinel below names the reason.
var ErrMalformed = errors.New("malformed frame")

// decodeError is a decoding sentinel: it is itself and an ErrMalformed.
type decodeError string

func (e decodeError) Error() string        { return string(e) }
func (e decodeError) Is(target error) bool { return target == ErrMalformed }

// Decoding errors. Every malformed input yields an error wrapping one of them.
var (
	// ErrMarker means the first byte of a frame is not Marker.
	ErrMarker error = decodeError("bad frame marker")
	// ErrKind means the frame's kind is not one this version knows.
	ErrKind error = decodeError("unknown message kind")
	// ErrTooLarge means a frame's length is over the bound of the reader.
	ErrTooLarge error = decodeError("frame too large")
	// ErrTruncated means the stream or the body ended before the message did.
	ErrTruncated error = decodeError("truncated frame")
	// ErrCount means a count is larger than the body could possibly hold.
	ErrCount error = decodeError("count over bound")
	// ErrUTF8 means a string is not valid UTF-8.
	ErrUTF8 error = decodeError("string is not valid UTF-8")
	// ErrTrailing means the body has bytes after the end of its message.
	ErrTrailing error = decodeError("trailing bytes after message")
	// ErrMode means a hello names an unknown mode.
	ErrMode error = decodeError("unknown agency mode")
	// ErrEmptyBatch means a batch carries no bets.
	ErrEmptyBatch error = decodeError("batch with no bets")
)

// ErrStringLen means a string is too long to encode (over 255 bytes).
var ErrStringLen = errors.New("string too long to encode")
