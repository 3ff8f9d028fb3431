// Package lottery holds the domain of the national lottery: the Bet record that
// agencies send and the central stores, its validation rules and the draw rule.
//
// It does no I/O. The protocol and store packages import it; it imports neither.
package lottery

import (
	"strconv"
	"time"
)

// WinnerNumber is the number drawn by the central: a bet wins when it played it.
const WinnerNumber = 7574

// Field bounds enforced by Validate and relied on by the wire encoding.
const (
	// MaxNameLen is the longest first or last name accepted, in bytes of UTF-8.
	MaxNameLen = 100
	// MaxDocumentLen is the most digits a document (DNI) may have.
	MaxDocumentLen = 10
	// MaxNumber is the highest number a bet may play; the lowest is 0.
	MaxNumber = 9999
	// DateLayout is the layout of birthdates on the wire, in CSV files and in the store.
	DateLayout = "2006-01-02"
	// MinBirthYear is the earliest birth year accepted. Python's
	// date.fromisoformat, which the course's load_bets uses, reads no year
	// below 1000; nobody alive was born before 1900.
	MinBirthYear = 1900
)

// Bet is one bet placed at an agency: who played (names, document, birthdate)
// and which number. It mirrors the course's Python Bet record.
type Bet struct {
	Agency    int
	FirstName string
	LastName  string
	// Document is the player's DNI exactly as given: a string of 1..10 digits.
	// Leading zeros are kept. Documents are not unique: one person may bet twice.
	Document  string
	Birthdate Date
	Number    int
}

// Date is a calendar date with no time of day or zone, as birthdates are.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses a YYYY-MM-DD date, rejecting anything that is not a real
// calendar day (2023-02-30) or not in exactly that layout.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil || len(s) != len(DateLayout) {
		return Date{}, ErrDateFormat
	}
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, nil
}

// String formats d as YYYY-MM-DD.
func (d Date) String() string {
	var b [10]byte
	return string(d.AppendFormat(b[:0]))
}

// AppendFormat appends d as YYYY-MM-DD to b without allocating beyond b's growth.
func (d Date) AppendFormat(b []byte) []byte {
	y, m, dd := d.Year, int(d.Month), d.Day
	if y < 0 || y > 9999 {
		// Out of the layout's range; fall back to the general path.
		return append(b, time.Date(y, d.Month, dd, 0, 0, 0, 0, time.UTC).Format(DateLayout)...)
	}
	return append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-',
		byte('0'+dd/10), byte('0'+dd%10))
}

// valid reports whether d names a real calendar day.
func (d Date) valid() bool {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
	return t.Year() == d.Year && t.Month() == d.Month && t.Day() == d.Day
}

// after reports whether d is later than the calendar day of now.
func (d Date) after(now time.Time) bool {
	y, m, dd := now.Date()
	if d.Year != y {
		return d.Year > y
	}
	if d.Month != m {
		return d.Month > m
	}
	return d.Day > dd
}

// HasWon reports whether b won the draw. It is the course's has_won.
func HasWon(b Bet) bool {
	return b.Number == WinnerNumber
}

// FromFields builds agency's bet from its fields as text, in the order of
// an agency's CSV row. A birthdate or number that does not parse is a
// *ValidationError naming the field; the rest is for Validate to judge.
func FromFields(agency int, firstName, lastName, document, birthdate, number string) (Bet, error) {
	b := Bet{Agency: agency, FirstName: firstName, LastName: lastName, Document: document}
	var err error
	if b.Birthdate, err = ParseDate(birthdate); err != nil {
		return Bet{}, &ValidationError{FieldBirthdate, birthdate, ErrDateFormat}
	}
	if b.Number, err = strconv.Atoi(number); err != nil {
		return Bet{}, &ValidationError{FieldNumber, number, ErrNumberRange}
	}
	return b, nil
}
