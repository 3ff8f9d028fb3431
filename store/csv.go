package store

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"

	"github.com/loteria-nacional/tp0/lottery"
)

// ErrRow means a stored or exported row is not a bet in the course's CSV format.
var ErrRow = errors.New("malformed bet row")

// AppendRow appends bet as the row that the course's Python store_bets writes
// to bets.csv (csv.writer, QUOTE_MINIMAL), without the line terminator:
//
//	agency,first_name,last_name,document,YYYY-MM-DD,number
func AppendRow(b []byte, bet *lottery.Bet) []byte {
	b = strconv.AppendInt(b, int64(bet.Agency), 10)
	b = appendField(append(b, ','), bet.FirstName)
	b = appendField(append(b, ','), bet.LastName)
	b = appendField(append(b, ','), bet.Document)
	b = bet.Birthdate.AppendFormat(append(b, ','))
	b = strconv.AppendInt(append(b, ','), int64(bet.Number), 10)
	return b
}

// appendField quotes s the way Python's csv module does under QUOTE_MINIMAL:
// only when it holds the delimiter, the quote character or a line break, with
// quotes doubled.
func appendField(b []byte, s string) []byte {
	if !needsQuotes(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// needsQuotes reports whether s holds the delimiter, the quote character or
// a line break (a byte loop: strings.ContainsAny builds its set each call,
// once per field of every stored bet).
func needsQuotes(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', '"', '\r', '\n':
			return true
		}
	}
	return false
}

// ParseRow parses one bets.csv row (without its terminator) into a Bet. Fields
// are sliced from row, which is kept alive by the returned bet.
func ParseRow(row string) (lottery.Bet, error) {
	var f [6]string
	if strings.IndexByte(row, '"') < 0 {
		// Fast path: no quoting, so commas split fields.
		rest := row
		for i := range 5 {
			j := strings.IndexByte(rest, ',')
			if j < 0 {
				return lottery.Bet{}, fmt.Errorf("%w: %d fields, want 6: %q", ErrRow, i+1, row)
			}
			f[i], rest = rest[:j], rest[j+1:]
		}
		if strings.IndexByte(rest, ',') >= 0 {
			return lottery.Bet{}, fmt.Errorf("%w: more than 6 fields: %q", ErrRow, row)
		}
		f[5] = rest
	} else {
		r := csv.NewReader(strings.NewReader(row))
		r.FieldsPerRecord = 6
		rec, err := r.Read()
		if err != nil {
			return lottery.Bet{}, fmt.Errorf("%w: %w", ErrRow, err)
		}
		copy(f[:], rec)
	}
	return betFromFields(f)
}

func betFromFields(f [6]string) (lottery.Bet, error) {
	agency, err := strconv.Atoi(f[0])
	if err != nil {
		return lottery.Bet{}, fmt.Errorf("%w: agency %q", ErrRow, f[0])
	}
	bet, err := lottery.FromFields(agency, f[1], f[2], f[3], f[4], f[5])
	if err != nil {
		return lottery.Bet{}, fmt.Errorf("%w: %w", ErrRow, err)
	}
	return bet, nil
}

// ReadCSV reads a bets.csv file as written by the course's Python store_bets
// and yields its bets in file order. It stops at the first malformed row,
// yielding an error that names its line.
func ReadCSV(r io.Reader) iter.Seq2[lottery.Bet, error] {
	return func(yield func(lottery.Bet, error) bool) {
		cr := csv.NewReader(bufio.NewReader(r))
		cr.FieldsPerRecord = 6
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(lottery.Bet{}, fmt.Errorf("%w: %w", ErrRow, err))
				return
			}
			line, _ := cr.FieldPos(0)
			bet, err := betFromFields([6]string(rec))
			if err != nil {
				err = fmt.Errorf("line %d: %w", line, err)
			}
			if !yield(bet, err) || err != nil {
				return
			}
		}
	}
}

// WriteCSV writes bets as Python's store_bets appends them to bets.csv: one
// QUOTE_MINIMAL row per bet, each ended by "\r\n".
func WriteCSV(w io.Writer, bets iter.Seq2[lottery.Bet, error]) error {
	bw := bufio.NewWriter(w)
	var row []byte
	for bet, err := range bets {
		if err != nil {
			return err
		}
		row = append(AppendRow(row[:0], &bet), '\r', '\n')
		if _, err := bw.Write(row); err != nil {
			return err
		}
	}
	return bw.Flush()
}
