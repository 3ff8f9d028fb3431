// Package logformat sets up go-logging with the course's line format, which
// both programs share and which tests and users grep:
//
//	2026-11-26 18:13:00 INFO     action: apuesta_recibida | result: success | cantidad: 212
//
// Fields are separated by " | " and each is "key: value". A value that comes
// from outside the program (the network, a file, an error text) goes through
// Value first, so it can neither open a new field nor a new line.
package logformat

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/op/go-logging"
)

// Format is the go-logging format of every line.
const Format = `%{time:2006-01-02 15:04:05} %{level:-8s} %{message}`

// Logger is what the project's packages log through: the go-logging
// methods they use, so a *logging.Logger is one. Libraries take it as an
// option and default to Discard; mains pass New's, tests one that writes to
// t.Log.
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
	Errorf(format string, args ...any)
	Criticalf(format string, args ...any)
	// IsEnabledFor reports whether a line at level would be written, so a
	// loop of lines can be skipped whole.
	IsEnabledFor(level logging.Level) bool
}

// New returns a logger of its own that writes the lines at level or above
// to w in Format. It touches no global state: several may live in one
// process (three centrals of a test, each with its own log).
func New(w io.Writer, level logging.Level, module string) *Leveled {
	backend := logging.NewLogBackend(w, "", 0)
	leveled := logging.AddModuleLevel(logging.NewBackendFormatter(backend, logging.MustStringFormatter(Format)))
	leveled.SetLevel(level, "")
	l := &logging.Logger{Module: module}
	l.SetBackend(leveled)
	return &Leveled{Logger: l, backend: leveled}
}

// Leveled is New's logger: a go-logging Logger whose IsEnabledFor asks its
// own backend (go-logging's asks its global one, whatever the logger's).
type Leveled struct {
	*logging.Logger
	backend logging.LeveledBackend
}

// IsEnabledFor reports whether a line at level reaches the logger's output.
func (l *Leveled) IsEnabledFor(level logging.Level) bool {
	return l.backend.IsEnabledFor(level, l.Module)
}

// Discard is a Logger that writes nothing.
var Discard Logger = discard{}

type discard struct{}

func (discard) Debugf(string, ...any)           {}
func (discard) Infof(string, ...any)            {}
func (discard) Warningf(string, ...any)         {}
func (discard) Errorf(string, ...any)           {}
func (discard) Criticalf(string, ...any)        {}
func (discard) IsEnabledFor(logging.Level) bool { return false }

// Levels lists the level names that ParseLevel accepts, most severe first.
const Levels = "CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG"

// ParseLevel returns the go-logging level named s (any case).
func ParseLevel(s string) (logging.Level, error) {
	l, err := logging.LogLevel(s)
	if err != nil {
		return 0, fmt.Errorf("unknown level (%s)", Levels)
	}
	return l, nil
}

// MaxValue bounds what Value keeps of a value, in bytes: a 1 MB CSV field
// or error text makes a line of about this much, not of 1 MB.
const MaxValue = 512

// Value returns s safe to print as one field's value: the field separator
// '|', backslashes, control characters (line breaks, ESC, BEL, ...), Unicode
// format characters (right-to-left overrides, zero-width spaces, byte order
// marks, which can make a line read otherwise than it is) and bytes that are
// not UTF-8 are written as Go-style escapes (\x7c, \\, \n, \x1b, \u202e,
// \xff), so the line keeps its shape whatever s holds. A value longer than
// MaxValue bytes is cut there, with how much was left out. Text without any
// of this is returned as is.
func Value(s string) string {
	cut := 0
	if len(s) > MaxValue {
		end := MaxValue
		for end > 0 && !utf8.RuneStart(s[end]) {
			end--
		}
		s, cut = s[:end], len(s)-end
	}
	if !needsEscape(s) {
		if cut > 0 {
			return fmt.Sprintf("%s…[+%d bytes]", s, cut)
		}
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '|' || r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f, r == 0x2028, r == 0x2029, unicode.Is(unicode.Cf, r): // C1 controls, line breaks, format characters
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	if cut > 0 {
		fmt.Fprintf(&b, "…[+%d bytes]", cut)
	}
	return b.String()
}

// needsEscape is Value's fast path: plain ASCII text without '|' or '\\'
// needs nothing. Other text takes the slow path, which copies what is safe.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '|' || c == '\\' {
			return true
		}
	}
	return false
}
