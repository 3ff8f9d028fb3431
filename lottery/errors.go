package lottery

import (
	"errors"
	"fmt"
)

// Sentinel errors of bet validation. A *ValidationError wraps exactly one of
// them, so callers test the reason with errors.Is and the field with errors.As.
var (
	// ErrEmpty is returned for a required text field that is empty.
	ErrEmpty = errors.New("is empty")
	// ErrTooLong is returned for a name longer than MaxNameLen bytes.
	ErrTooLong = fmt.Errorf("is longer than %d bytes", MaxNameLen)
	// ErrNotUTF8 is returned for a name that is not valid UTF-8.
	ErrNotUTF8 = errors.New("is not valid UTF-8")
	// ErrControlChar is returned for a name with a control character (a line break, a NUL).
	ErrControlChar = errors.New("has a control character")
	// ErrNoLetter is returned for a name with no letter at all (only spaces,
	// punctuation, or invisible characters such as U+200B or U+FEFF).
	ErrNoLetter = errors.New("has no letter")
	// ErrDocument is returned for a document that is not 1..MaxDocumentLen ASCII digits.
	ErrDocument = fmt.Errorf("is not 1 to %d digits", MaxDocumentLen)
	// ErrDateFormat is returned for a birthdate that is not a real YYYY-MM-DD day.
	ErrDateFormat = errors.New("is not a date in YYYY-MM-DD format")
	// ErrFutureDate is returned for a birthdate after today.
	ErrFutureDate = errors.New("is in the future")
	// ErrTooOld is returned for a birthdate before MinBirthYear.
	ErrTooOld = fmt.Errorf("is before %d", MinBirthYear)
	// ErrNumberRange is returned for a number outside 0..MaxNumber.
	ErrNumberRange = fmt.Errorf("is not a number in 0..%d", MaxNumber)
	// ErrAgency is returned for an agency id below 1.
	ErrAgency = errors.New("is not an agency id of 1 or more")
)

// Field names used in ValidationError, in the order of the CSV row.
const (
	FieldAgency    = "agency"
	FieldFirstName = "first_name"
	FieldLastName  = "last_name"
	FieldDocument  = "document"
	FieldBirthdate = "birthdate"
	FieldNumber    = "number"
)

// ValidationError says which field of a bet is invalid and why.
type ValidationError struct {
	Field string // one of the Field* constants
	Value string // the offending value, as text
	Err   error  // one of the sentinel errors above
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s %q %v", e.Field, e.Value, e.Err)
}

func (e *ValidationError) Unwrap() error { return e.Err }
