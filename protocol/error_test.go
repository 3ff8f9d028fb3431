package protocol

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestCodes(t *testing.T) {
	t.Parallel()
	if len(Codes()) != int(CodeNotLeader) {
		t.Fatalf("Codes() has %d codes, want %d", len(Codes()), CodeNotLeader)
	}
	for _, c := range Codes() {
		if c.Info().Name == "" || c.Info().Meaning == "" {
			t.Errorf("code %d has no name or meaning", c)
		}
		if !c.Fatal() && c.Retryable() && c != CodeGap && c != CodeIncomplete {
			t.Errorf("%s: a recoverable code that is also retried must be gap or incomplete", c)
		}
	}
	for _, tt := range []struct {
		c                Code
		fatal, retryable bool
	}{
		{CodeMalformed, true, false}, {CodeInvalidBet, false, false}, {CodeGap, false, true},
		{CodeUnavailable, true, true}, {CodeInternal, true, true}, {CodeForbidden, true, false}, {CodeReplaced, true, true},
		{Code(200), true, false}, {Code(0), true, false},
	} {
		if tt.c.Fatal() != tt.fatal || tt.c.Retryable() != tt.retryable {
			t.Errorf("%s: fatal %t retryable %t, want %t %t", tt.c, tt.c.Fatal(), tt.c.Retryable(), tt.fatal, tt.retryable)
		}
	}
	if !errors.Is(NewError(CodeGap, "x"), &Error{Code: CodeGap}) || errors.Is(NewError(CodeGap, "x"), &Error{Code: CodeBusy}) {
		t.Fatal("errors.Is does not compare codes")
	}
}

// docs/protocol.md's table of error codes is this package's table: a code added
// or a policy changed here without the document fails this test.
func TestReadmeCodeTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Skip(err)
	}
	row := regexp.MustCompile(`(?m)^\| (\d+) \| (\w+) \| [^|]+ \| (closes|goes on) \| (retries|gives up)[^|]*\|$`)
	rows := row.FindAllStringSubmatch(string(b), -1)
	if len(rows) != len(Codes()) {
		t.Fatalf("docs/protocol.md has %d error code rows, protocol has %d codes", len(rows), len(Codes()))
	}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		c := Code(n)
		want := []string{c.String(), map[bool]string{true: "closes", false: "goes on"}[c.Fatal()],
			map[bool]string{true: "retries", false: "gives up"}[c.Retryable()]}
		if got := []string{r[2], r[3], r[4]}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("docs/protocol.md row for code %d says %v, protocol says %v", n, got, want)
		}
	}
}
