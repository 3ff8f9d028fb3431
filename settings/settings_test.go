package settings

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParser(t *testing.T) {
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
			p.IntIn("neg", 1, 9) // a later error must not replace the first
			var e *Error
			if !errors.As(p.Err, &e) || e.Key != tt.key || !errors.Is(p.Err, ErrInvalid) {
				t.Fatalf("got %v, want error on key %s", p.Err, tt.key)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	called := false
	if err := ReadFile(dir+"/missing.ini", false, func(io.Reader) error { called = true; return nil }); err != nil || called {
		t.Fatalf("missing file: err %v, parse called %v", err, called)
	}
	path := dir + "/bad.ini"
	os.WriteFile(path, []byte("x"), 0o644)
	bad := errors.New("syntax")
	if err := ReadFile(path, false, func(io.Reader) error { return bad }); !errors.Is(err, bad) || !strings.Contains(err.Error(), "bad.ini is malformed") {
		t.Fatalf("malformed file: %v", err)
	}
	if err := ReadFile(dir, false, func(r io.Reader) error { _, err := io.ReadAll(r); return err }); err == nil {
		t.Fatal("a directory read as a config file gave no error")
	}
}
