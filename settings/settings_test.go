package settings

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParser(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"port": " 12345 ", "bad": "12a", "neg": "-1", "d": "250ms", "b": "Yes", "n": "7", "empty": ""}
	p := Parser{Lookup: func(k string) string { return vals[k] }}
	if p.IntIn("port", 1, 65535) != 12345 || p.Duration("d") != 250*time.Millisecond || !p.Bool("b") || Parse(&p, "n", strconv.Atoi) != 7 ||
		p.DurationIn("d", time.Millisecond, time.Second) != 250*time.Millisecond {
		t.Fatal("good values misread")
	}
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	tests := []struct {
		name string
		call func(*Parser)
		key  string
	}{
		{"ErrNotNumber", func(p *Parser) { p.IntIn("bad", 1, 9) }, "bad"},
		{"ErrRange", func(p *Parser) { p.IntIn("neg", 1, 9) }, "neg"},
		{"ErrDuration", func(p *Parser) { p.Duration("bad") }, "bad"},
		{"ErrBool", func(p *Parser) { p.Bool("bad") }, "bad"},
		{"ErrParse", func(p *Parser) { Parse(p, "bad", strconv.Atoi) }, "bad"},
		{"ErrDurationRange", func(p *Parser) { p.DurationIn("d", time.Second, time.Hour) }, "d"},
		{"ErrEmpty", func(p *Parser) { p.NonEmpty("empty") }, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Parser{Lookup: func(k string) string { return vals[k] }}
			tt.call(&p)
			p.IntIn("neg", 1, 9) // a later error is reported beside the first
			var e *Error
			if !errors.As(p.Err, &e) || e.Key != tt.key || !errors.Is(p.Err, ErrInvalid) {
				t.Fatalf("got %v, want error on key %s", p.Err, tt.key)
			}
			all := Each(p.Err)
			if last := all[len(all)-1]; !errors.As(last, &e) || e.Key != "neg" {
				t.Fatalf("errors %v: the later one is missing", all)
			}
		})
	}
}

// Every bad key is reported at once, one error each, in order.
func TestParser_EveryError(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"a": "x", "b": "y", "c": "3"}
	p := Parser{Lookup: func(k string) string { return vals[k] }}
	p.IntIn("a", 1, 9)
	p.Bool("b")
	p.IntIn("c", 1, 9)
	p.Duration("a")
	var keys []string
	for _, err := range Each(p.Err) {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%v is not an *Error", err)
		}
		keys = append(keys, e.Key)
	}
	if strings.Join(keys, ",") != "a,b,a" {
		t.Fatalf("keys %v, want a,b,a", keys)
	}
}

func TestReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	called := false
	if read, err := ReadFile(dir+"/missing.ini", false, func(io.Reader) error { called = true; return nil }); err != nil || called || read {
		t.Fatalf("missing file: err %v, parse called %v", err, called)
	}
	path := dir + "/bad.ini"
	os.WriteFile(path, []byte("x"), 0o644)
	bad := errors.New("syntax")
	if _, err := ReadFile(path, false, func(io.Reader) error { return bad }); !errors.Is(err, bad) || !strings.Contains(err.Error(), "bad.ini is malformed") {
		t.Fatalf("malformed file: %v", err)
	}
	if _, err := ReadFile(dir, false, func(io.Reader) error { return nil }); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory read as a config file: %v", err)
	}
	if _, err := ReadFile(dir+"/missing.ini", true, func(io.Reader) error { return nil }); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.ini") {
		t.Fatalf("a named config file that is missing: %v", err)
	}
}

// textReader keeps the text it is given, or fails with err.
type textReader struct {
	text string
	err  error
}

func (r *textReader) ReadConfig(in io.Reader) error {
	b, err := io.ReadAll(in)
	r.text = string(b)
	if r.err != nil {
		return r.err
	}
	return err
}

func TestReadInto(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/config.ini"
	os.WriteFile(path, []byte("[DEFAULT]\nSERVER_PORT = 1\n"), 0o644)
	a, b := &textReader{}, &textReader{}
	if read, err := ReadInto(path, true, a, b); err != nil || !read {
		t.Fatalf("ReadInto = %v, %v", read, err)
	}
	if a.text == "" || a.text != b.text {
		t.Fatalf("the readers were given %q and %q, want the file's text twice", a.text, b.text)
	}
	bad := errors.New("syntax")
	if _, err := ReadInto(path, true, &textReader{err: bad}, b); !errors.Is(err, bad) || !strings.Contains(err.Error(), "config.ini is malformed") {
		t.Fatalf("a reader's failure: %v", err)
	}
}
