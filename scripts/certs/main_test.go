package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The keys' folder is the owner's alone, even when it existed before with
// a wider mode (it once kept 0755).
func TestRun_FolderIsPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-out", dir, "-agencies", "1"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v, want 0700", st.Mode().Perm())
	}
	for _, key := range []string{"ca.key", "server.key", "agency-1.key"} {
		if st, err := os.Stat(filepath.Join(dir, key)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", key, st.Mode().Perm(), err)
		}
	}
}
