// Package settings turns configuration text into typed values, keeping the
// first error, which names the key, the value and what is wrong with it, and
// reads config files with the programs' rule: a missing file is fine (defaults
// and environment apply), a malformed one is an error. It knows nothing of
// viper: it reads values through a lookup function.
package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
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

// Parser converts values looked up by key. After the calls, Err holds every
// problem found (errors.Join of *Error, in the order of the calls), or nil,
// so a config with three bad keys is told about all three at once.
type Parser struct {
	Lookup func(key string) string
	Err    error
	errs   []error
}

func (p *Parser) get(key string) string { return strings.TrimSpace(p.Lookup(key)) }

func (p *Parser) fail(key, val, reason string) {
	p.errs = append(p.errs, &Error{key, val, reason})
	p.Err = errors.Join(p.errs...)
}

// Each returns the errors err holds: those of an errors.Join one by one
// (nested joins flattened), or err alone. A program logs one line each.
func Each(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, Each(e)...)
	}
	return out
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

// Default is a config key with its default value and what it sets.
type Default struct{ Key, Value, Help string }

// Keys lists defaults as --help shows them: each key, the environment
// variable that overrides it (env(key)), its default ("" shown as -) and
// what it sets. Both programs' parsers read the same table, so the list
// cannot drift from what they accept.
func Keys(defaults []Default, env func(key string) string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, d := range defaults {
		def := d.Value
		if def == "" {
			def = "-"
		}
		if e := env(d.Key); e != d.Key {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Key, e, def, d.Help)
		} else {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", d.Key, def, d.Help)
		}
	}
	tw.Flush()
	return b.String()
}

// ReadFile opens path and passes it to parse; read says whether it did. A
// missing file is not an error (parse is not called) unless required (a
// path the operator named); an unreadable or malformed one is, naming the
// file, and so is a path that is not a regular file (a directory, say).
func ReadFile(path string, required bool, parse func(io.Reader) error) (read bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("config file %s: %w", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return false, fmt.Errorf("config file %s: %w", path, err)
	} else if !st.Mode().IsRegular() {
		return false, fmt.Errorf("config file %s is not a regular file (%s)", path, st.Mode().Type())
	}
	if err := parse(f); err != nil {
		return false, fmt.Errorf("config file %s is malformed: %w", path, err)
	}
	return true, nil
}

// Reader takes configuration text in one format (a *viper.Viper does).
type Reader interface {
	ReadConfig(in io.Reader) error
}

// ReadInto reads path as ReadFile does and gives its text to each reader in
// turn: a program's settings and, beside them, a reader of the file alone
// (whose keys Unknown checks).
func ReadInto(path string, required bool, readers ...Reader) (read bool, err error) {
	return ReadFile(path, required, func(r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		for _, into := range readers {
			if err := into.ReadConfig(bytes.NewReader(b)); err != nil {
				return err
			}
		}
		return nil
	})
}

// NoFile is what a config line shows for config_file when no file was read:
// the defaults and the environment alone.
const NoFile = "none"

// FileShown is config_file's value in a config line: the file read, or NoFile.
func FileShown(read string) string {
	if read == "" {
		return NoFile
	}
	return read
}

// Command is what a program's command line may ask besides running it:
// --help (usage, exit 0), --version (exit 0), a subcommand, or anything
// else (usage on stderr, exit 2).
type Command struct {
	Name, Usage, Version string
	// Sub are the subcommands: each takes the arguments after its name and
	// returns the exit code.
	Sub map[string]func(args []string) int
}

// Handle handles args; done is false when there are none and the program
// should run.
func (c Command) Handle(args []string, stdout, stderr io.Writer) (code int, done bool) {
	if len(args) == 0 {
		return 0, false
	}
	if sub, ok := c.Sub[args[0]]; ok {
		return sub(args[1:]), true
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, c.Usage)
		return 0, true
	case "-version", "--version", "version":
		fmt.Fprintf(stdout, "%s %s\n", c.Name, c.Version)
		return 0, true
	}
	fmt.Fprintf(stderr, "%s: unknown argument %q\n\n%s", c.Name, args[0], c.Usage)
	return 2, true
}

// Unknown refuses the keys of a config file that no setting reads (a
// misspelt key would otherwise leave its setting at its default without a
// word): one *Error per key, naming it and the known key nearest to it.
// keys are the file's, known the settings'; both are compared without case.
func Unknown(file string, keys []string, values func(key string) string, known []string) error {
	var errs []error
	have := map[string]bool{}
	for _, k := range known {
		have[strings.ToLower(k)] = true
	}
	for _, k := range keys {
		if have[strings.ToLower(k)] {
			continue
		}
		reason := "is not a setting of " + file
		if near := Nearest(k, known); near != "" {
			reason += "; did you mean " + near + "?"
		}
		errs = append(errs, &Error{Key: k, Value: values(k), Reason: reason})
	}
	return errors.Join(errs...)
}

// Nearest is the known key nearest to key (fewest edits, without case),
// or "" when none is near enough to be a misspelling of it.
func Nearest(key string, known []string) string {
	best, bestD := "", len(key)/3+2
	for _, k := range known {
		if d := distance(strings.ToLower(key), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b (bytes).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
