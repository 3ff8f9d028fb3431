package logformat

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every action the programs log is in the log table of docs/logs.md: the
// names are an interface (the course's suite and operators parse them), so
// a new one is documented when it is added.
func TestDocsListEveryAction(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/logs.md")
	if err != nil {
		t.Fatal(err)
	}
	table := string(doc)
	action := regexp.MustCompile(`action: ([a-z_]+) \|`)
	logged := map[string]string{}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".data" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			strings.Contains(path, string(filepath.Separator)+"scripts"+string(filepath.Separator)) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range action.FindAllStringSubmatch(string(b), -1) {
			logged[m[1]] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(logged) < 30 {
		t.Fatalf("found only %d actions in the code: is the walk wrong?", len(logged))
	}
	for name, path := range logged {
		if !strings.Contains(table, "`"+name+"`") {
			t.Errorf("%s logs action %q, which the log table of docs/logs.md does not list", path, name)
		}
	}
}
