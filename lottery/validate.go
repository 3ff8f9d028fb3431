package lottery

import (
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Validate checks every field of b against the rules of the central, as of now.
// It returns a *ValidationError for the first invalid field, or nil.
func (b Bet) Validate() error {
	return b.ValidateAt(time.Now())
}

// ValidateAt is Validate with an explicit "today", for birthdates.
func (b Bet) ValidateAt(now time.Time) error {
	if b.Agency < 1 {
		return &ValidationError{FieldAgency, strconv.Itoa(b.Agency), ErrAgency}
	}
	if err := validateName(FieldFirstName, b.FirstName); err != nil {
		return err
	}
	if err := validateName(FieldLastName, b.LastName); err != nil {
		return err
	}
	if !isDocument(b.Document) {
		return &ValidationError{FieldDocument, b.Document, ErrDocument}
	}
	if !b.Birthdate.valid() {
		return &ValidationError{FieldBirthdate, b.Birthdate.String(), ErrDateFormat}
	}
	if b.Birthdate.Year < MinBirthYear {
		return &ValidationError{FieldBirthdate, b.Birthdate.String(), ErrTooOld}
	}
	if b.Birthdate.after(now) {
		return &ValidationError{FieldBirthdate, b.Birthdate.String(), ErrFutureDate}
	}
	if b.Number < 0 || b.Number > MaxNumber {
		return &ValidationError{FieldNumber, strconv.Itoa(b.Number), ErrNumberRange}
	}
	return nil
}

func validateName(field, s string) error {
	switch {
	case s == "":
		return &ValidationError{field, s, ErrEmpty}
	case len(s) > MaxNameLen:
		return &ValidationError{field, s, ErrTooLong}
	case !utf8.ValidString(s):
		return &ValidationError{field, s, ErrNotUTF8}
	}
	letter := false
	for _, r := range s {
		if unicode.IsControl(r) {
			return &ValidationError{field, s, ErrControlChar}
		}
		letter = letter || unicode.IsLetter(r)
	}
	if !letter {
		return &ValidationError{field, s, ErrNoLetter}
	}
	return nil
}

func isDocument(s string) bool {
	if len(s) < 1 || len(s) > MaxDocumentLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
