package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lookup's order: TP0_DATASET, .data/dataset.zip, .data/datasets.zip,
// the shared copy beside the root; found from any folder under the root.
func TestFind(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // relative to the parent of root
		env   string
		want  string // relative to the parent of root; "" for none
	}{
		{"None", nil, "", ""},
		{"Shared", []string{"shared/tp0-dataset/dataset.zip"}, "", "shared/tp0-dataset/dataset.zip"},
		{"StatementName", []string{"shared/tp0-dataset/dataset.zip", "root/.data/datasets.zip"}, "", "root/.data/datasets.zip"},
		{"DataFirst", []string{"root/.data/datasets.zip", "root/.data/dataset.zip"}, "", "root/.data/dataset.zip"},
		{"Explicit", []string{"root/.data/dataset.zip", "mine.zip"}, "mine.zip", "mine.zip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			root := filepath.Join(top, "root")
			write(t, filepath.Join(root, "go.mod"), "module "+module+"\n\ngo 1.26\n")
			write(t, filepath.Join(root, "e2e", "x_test.go"), "package e2e\n")
			for _, f := range tc.files {
				write(t, filepath.Join(top, f), "zip")
			}
			t.Setenv(Env, "")
			if tc.env != "" {
				t.Setenv(Env, filepath.Join(top, tc.env))
			}
			t.Chdir(filepath.Join(root, "e2e"))
			path, from, err := Find()
			if tc.want == "" {
				if !errors.Is(err, ErrNotFound) || !strings.Contains(Describe(path, from, err), "generated data") {
					t.Fatalf("Find: %q, %v; want ErrNotFound", path, err)
				}
				return
			}
			if err != nil || path != filepath.Join(top, tc.want) {
				t.Fatalf("Find: %q (%s), %v; want %s", path, from, err, tc.want)
			}
			if d := Describe(path, from, err); !strings.Contains(d, path) {
				t.Fatalf("Describe: %q does not name %s", d, path)
			}
		})
	}
}

// A TP0_DATASET that names nothing is an error, not a silent fallback.
func TestFind_ExplicitMissing(t *testing.T) {
	t.Setenv(Env, filepath.Join(t.TempDir(), "nope.zip"))
	if _, _, err := Find(); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), Env) {
		t.Fatalf("Find: %v, want an error naming %s", err, Env)
	}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
