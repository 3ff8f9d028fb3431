package cluster

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/loteria-nacional/tp0/logformat"
)

// A follower whose log tail a new leader truncates ("clearing log suffix":
// raft's DeleteRange up to the last index), then writes again, must reopen
// its log after a crash. The copy of the folder taken while the store is
// still open is what a kill -9 leaves: every append and every change of the
// segments' metadata was synced before it returned.
func TestLogStore_TruncatedTailSurvivesACrash(t *testing.T) {
	t.Parallel()
	for _, kind := range []LogStore{LogWAL, LogBolt} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			log := newRaftLog(logformat.Discard, 1)
			s, err := openLogStore(dir, kind, 64<<10, log)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			store := func(from, to uint64, term uint64) {
				t.Helper()
				var logs []*raft.Log
				for i := from; i <= to; i++ {
					logs = append(logs, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: fmt.Appendf(nil, "entry %d of term %d", i, term)})
				}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
			}
			for i := uint64(1); i <= 40; i += 8 {
				store(i, i+7, 1) // raft appends in batches
			}
			if err := s.DeleteRange(40, 40); err != nil { // the tail a new leader conflicts with
				t.Fatal(err)
			}
			store(40, 44, 2)

			crashed := filepath.Join(t.TempDir(), "crashed")
			copyDir(t, dir, crashed)
			r, err := openLogStore(crashed, kind, 64<<10, log)
			if err != nil {
				t.Fatalf("reopening the log after the crash: %v", err)
			}
			defer r.Close()
			if first, _ := r.FirstIndex(); first != 1 {
				t.Fatalf("first index %d after the crash, want 1", first)
			}
			if last, _ := r.LastIndex(); last != 44 {
				t.Fatalf("last index %d after the crash, want 44", last)
			}
			for i := uint64(1); i <= 44; i++ {
				var l raft.Log
				if err := r.GetLog(i, &l); err != nil {
					t.Fatalf("entry %d after the crash: %v", i, err)
				}
				want := uint64(1)
				if i >= 40 {
					want = 2
				}
				if l.Term != want {
					t.Fatalf("entry %d has term %d, want %d", i, l.Term, want)
				}
			}
		})
	}
}

// copyDir copies the files of dir (recursively) to dst.
func copyDir(t *testing.T, dir, dst string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
