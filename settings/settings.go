// Package settings turns configuration text into typed values, keeping the
// first error, which names the key, the value and what is wrong with it, and
// reads config files with the programs' rule: a missing file is fine (defaults
// and environment apply), a malformed one is an error. It knows nothing of
// viper: it reads values through a lookup function.
package settings

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every *Error, for errors.Is.
var ErrInvalid = errors.New("invalid configuration value")

// Error says which key has which bad value, and why.
type Error struct {
	Key, Value, Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config key %s = %q: %s", e.Key, e.Value, e.Reason)
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Parser converts values looked up by key. After the calls, Err holds the
// first problem, or nil.
type Parser struct {
	Lookup func(key string) string
	Err    error
}

func (p *Parser) get(key string) string { return strings.TrimSpace(p.Lookup(key)) }

func (p *Parser) fail(key, val, reason string) {
	if p.Err == nil {
		p.Err = &Error{key, val, reason}
	}
}

// String returns the value as is.
func (p *Parser) String(key string) string { return p.get(key) }

// NonEmpty returns the value, which must not be empty.
func (p *Parser) NonEmpty(key string) string {
	s := p.get(key)
	if s == "" {
		p.fail(key, s, "must not be empty")
	}
	return s
}

// IntIn returns the value as a whole number in lo..hi.
func (p *Parser) IntIn(key string, lo, hi int) int {
	s := p.get(key)
	n, err := strconv.Atoi(s)
	if err != nil {
		p.fail(key, s, "not a whole number")
		return 0
	}
	if n < lo || n > hi {
		p.fail(key, s, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
	return n
}

// Duration returns the value as a positive duration ("30s", "500ms").
func (p *Parser) Duration(key string) time.Duration {
	s := p.get(key)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.fail(key, s, "not a positive duration such as 30s or 500ms")
	}
	return d
}

// Bool returns the value as true/false (also 1/0, yes/no, on/off).
func (p *Parser) Bool(key string) bool {
	s := p.get(key)
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	}
	p.fail(key, s, "not true or false")
	return false
}

// Parse returns the value converted by parse; parse's error is the reason.
func Parse[T any](p *Parser, key string, parse func(string) (T, error)) T {
	s := p.get(key)
	v, err := parse(s)
	if err != nil {
		p.fail(key, s, err.Error())
	}
	return v
}

// DurationIn returns the value as a duration in lo..hi.
func (p *Parser) DurationIn(key string, lo, hi time.Duration) time.Duration {
	s := p.get(key)
	d, err := time.ParseDuration(s)
	if err != nil {
		p.fail(key, s, "not a duration such as 30s or 500ms")
		return 0
	}
	if d < lo || d > hi {
		p.fail(key, s, fmt.Sprintf("must be between %s and %s", lo, hi))
	}
	return d
}

// Default is a config key with its default value.
type Default struct{ Key, Value string }

// ReadFile opens path and passes it to parse. A missing file is not an error
// (parse is not called); an unreadable or malformed one is, naming the file.
func ReadFile(path string, parse func(io.Reader) error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	defer f.Close()
	if err := parse(f); err != nil {
		return fmt.Errorf("config file %s is malformed: %w", path, err)
	}
	return nil
}
