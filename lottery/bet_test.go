package lottery

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validBet() Bet {
	return Bet{Agency: 1, FirstName: "Santiago Lionel", LastName: "D'Elia", Document: "30904465",
		Birthdate: Date{Year: 1999, Month: 3, Day: 17}, Number: 7574}
}

func TestHasWon(t *testing.T) {
	t.Parallel()
	b := validBet()
	if !HasWon(b) {
		t.Fatal("7574 must win")
	}
	b.Number = 7575
	if HasWon(b) {
		t.Fatal("7575 must not win")
	}
}

func TestBet_Validate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		mutate func(*Bet)
		field  string
		want   error
	}{
		{"OK", func(*Bet) {}, "", nil},
		{"OKAccents", func(b *Bet) { b.FirstName, b.LastName = "Tomàs", "Álvarez" }, "", nil},
		{"OKToday", func(b *Bet) { b.Birthdate = Date{2026, 11, 26} }, "", nil},
		{"OKBounds", func(b *Bet) { b.Number, b.Document = 0, "0" }, "", nil},
		{"ErrAgency", func(b *Bet) { b.Agency = 0 }, FieldAgency, ErrAgency},
		{"ErrEmptyFirst", func(b *Bet) { b.FirstName = "" }, FieldFirstName, ErrEmpty},
		{"ErrEmptyLast", func(b *Bet) { b.LastName = "" }, FieldLastName, ErrEmpty},
		{"ErrLongName", func(b *Bet) { b.LastName = strings.Repeat("a", MaxNameLen+1) }, FieldLastName, ErrTooLong},
		{"ErrUTF8", func(b *Bet) { b.FirstName = "a\xffb" }, FieldFirstName, ErrNotUTF8},
		{"ErrControl", func(b *Bet) { b.FirstName = "a\nb" }, FieldFirstName, ErrControlChar},
		{"ErrInvisibleOnly", func(b *Bet) { b.FirstName = "\ufeff\u200b" }, FieldFirstName, ErrNoLetter},
		{"ErrPunctuationOnly", func(b *Bet) { b.LastName = " - " }, FieldLastName, ErrNoLetter},
		{"ErrDocLetters", func(b *Bet) { b.Document = "12a4" }, FieldDocument, ErrDocument},
		{"ErrDocEmpty", func(b *Bet) { b.Document = "" }, FieldDocument, ErrDocument},
		{"ErrDocLong", func(b *Bet) { b.Document = "12345678901" }, FieldDocument, ErrDocument},
		{"ErrDate", func(b *Bet) { b.Birthdate = Date{2023, 2, 30} }, FieldBirthdate, ErrDateFormat},
		{"ErrFuture", func(b *Bet) { b.Birthdate = Date{2026, 11, 27} }, FieldBirthdate, ErrFutureDate},
		{"ErrYearZero", func(b *Bet) { b.Birthdate = Date{0, 1, 1} }, FieldBirthdate, ErrTooOld},
		{"ErrYear999", func(b *Bet) { b.Birthdate = Date{999, 12, 31} }, FieldBirthdate, ErrTooOld},
		{"ErrYear1899", func(b *Bet) { b.Birthdate = Date{1899, 12, 31} }, FieldBirthdate, ErrTooOld},
		{"OKYear1900", func(b *Bet) { b.Birthdate = Date{1900, 1, 1} }, "", nil},
		{"ErrNumberHigh", func(b *Bet) { b.Number = 10000 }, FieldNumber, ErrNumberRange},
		{"ErrNumberLow", func(b *Bet) { b.Number = -1 }, FieldNumber, ErrNumberRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := validBet()
			tt.mutate(&b)
			err := b.ValidateAt(now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var ve *ValidationError
			if tt.want != nil && (!errors.As(err, &ve) || ve.Field != tt.field) {
				t.Fatalf("got %#v, want field %s", err, tt.field)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"1999-03-17", "2000-02-29", "0001-01-01"} {
		d, err := ParseDate(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDate(%q) = %v, %v", s, d, err)
		}
	}
	for _, s := range []string{"", "1999-3-17", "17/03/1999", "1999-02-29", "1999-03-17T00:00", " 1999-03-17"} {
		if _, err := ParseDate(s); !errors.Is(err, ErrDateFormat) {
			t.Errorf("ParseDate(%q) = %v, want ErrDateFormat", s, err)
		}
	}
}
