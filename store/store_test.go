package store_test

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/internal/dataset"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// MustOpen opens a store in a temp dir and closes it when the test ends.
func MustOpen(tb testing.TB) *store.Store {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Close()
		// Whatever the test did, the file it leaves must pass bbolt's check
		// (as bbolt's btesting.MustCheck does).
		c, err := store.Open(path, store.Options{})
		if err != nil {
			tb.Errorf("reopening %s after the test: %v", path, err)
			return
		}
		defer c.Close()
		if err := c.Check(); err != nil {
			tb.Errorf("bbolt check of %s after the test: %v", path, err)
		}
	})
	return s
}

func bet(agency int, first, last, doc, date string, number int) lottery.Bet {
	d, err := lottery.ParseDate(date)
	if err != nil {
		panic(err)
	}
	return lottery.Bet{Agency: agency, FirstName: first, LastName: last, Document: doc, Birthdate: d, Number: number}
}

func tricky() []lottery.Bet {
	return []lottery.Bet{
		bet(1, "Tomàs", "D'Elia", "0012", "1980-01-01", 7574),
		bet(2, "Ana, María", `Dijo "hola"`, "30904465", "1999-03-17", 0),
		bet(3, " lead", "trail ", "1", "2000-02-29", 10),
		bet(1, "Ñandú", "Álvarez", "9999999999", "2004-08-23", 9999),
	}
}

func load(tb testing.TB, s *store.Store) []lottery.Bet {
	tb.Helper()
	var got []lottery.Bet
	for b, err := range s.LoadBets() {
		if err != nil {
			tb.Fatal(err)
		}
		got = append(got, b)
	}
	return got
}

// The course's test_common.py, ported.
func TestStore_StoreBets(t *testing.T) {
	t.Parallel()
	t.Run("KeepsFields", func(t *testing.T) {
		s := MustOpen(t)
		in := tricky()[:1]
		if err := s.StoreBets(in); err != nil {
			t.Fatal(err)
		}
		if got := load(t, s); !slices.Equal(got, in) {
			t.Fatalf("got %+v, want %+v", got, in)
		}
	})
	t.Run("KeepsRegistryOrder", func(t *testing.T) {
		s := MustOpen(t)
		in := tricky()
		if err := s.StoreBets(in[:2]); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreBets(in[2:]); err != nil {
			t.Fatal(err)
		}
		if got := load(t, s); !slices.Equal(got, in) {
			t.Fatalf("got %+v, want %+v", got, in)
		}
	})
	t.Run("ErrFailsMidway", func(t *testing.T) {
		s := MustOpen(t)
		in := tricky()
		in[2].Number = 10000
		err := s.StoreBets(in)
		var be *store.BetError
		if !errors.As(err, &be) || be.Index != 2 || !errors.Is(err, lottery.ErrNumberRange) {
			t.Fatalf("got %v, want BetError at 2 wrapping ErrNumberRange", err)
		}
		if got := load(t, s); len(got) != 0 {
			t.Fatalf("stored %d bets of a failed batch", len(got))
		}
		if n, _ := s.Count(); n != 0 {
			t.Fatalf("Count = %d after failed batch", n)
		}
	})
}

func TestStore_Append(t *testing.T) {
	t.Parallel()
	agencyBets := func(n int) []lottery.Bet {
		out := make([]lottery.Bet, n)
		for i := range out {
			out[i] = bet(2, "N"+strconv.Itoa(i), "L", strconv.Itoa(1000+i), "1990-01-01", i)
		}
		return out
	}
	t.Run("ExactlyOnce", func(t *testing.T) {
		s := MustOpen(t)
		all := agencyBets(10)
		steps := []struct {
			first          int
			n              int
			stored         int
			committedAfter uint64
		}{
			{0, 4, 4, 4},  // fresh
			{0, 4, 0, 4},  // full retry after a lost ack
			{2, 5, 3, 7},  // overlap with a different batch size
			{7, 3, 3, 10}, // the rest
		}
		for _, st := range steps {
			rc, err := s.Append(2, uint64(st.first), lottery.BetSlice(all[st.first:st.first+st.n]))
			if err != nil {
				t.Fatal(err)
			}
			if rc.Stored != st.stored || rc.Committed != st.committedAfter {
				t.Fatalf("step %+v: got %+v", st, rc)
			}
		}
		if got := load(t, s); !slices.Equal(got, all) {
			t.Fatalf("got %d bets, want the 10 in order", len(got))
		}
		if c, fin, _ := s.Committed(2); c != 10 || fin {
			t.Fatalf("Committed = %d, %v", c, fin)
		}
	})
	t.Run("ErrGap", func(t *testing.T) {
		s := MustOpen(t)
		if _, err := s.Append(2, 1, lottery.BetSlice(agencyBets(2))); !errors.Is(err, store.ErrGap) {
			t.Fatalf("got %v, want ErrGap", err)
		}
	})
	t.Run("ErrAgencyMismatch", func(t *testing.T) {
		s := MustOpen(t)
		bs := agencyBets(3)
		bs[1].Agency = 3
		_, err := s.Append(2, 0, lottery.BetSlice(bs))
		var be *store.BetError
		if !errors.As(err, &be) || be.Index != 1 || !errors.Is(err, store.ErrAgencyMismatch) {
			t.Fatalf("got %v", err)
		}
		if c, _, _ := s.Committed(2); c != 0 {
			t.Fatalf("committed %d after a refused batch", c)
		}
	})
	t.Run("ErrFinished", func(t *testing.T) {
		s := MustOpen(t)
		if _, err := s.Append(2, 0, lottery.BetSlice(agencyBets(2))); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(2, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(2, 2, lottery.BetSlice(agencyBets(3)[2:])); !errors.Is(err, store.ErrFinished) {
			t.Fatalf("got %v, want ErrFinished", err)
		}
	})
	t.Run("ErrDrawDone", func(t *testing.T) {
		s := MustOpen(t)
		if err := s.SaveDraw(timeNow(), 2, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(2, 0, lottery.BetSlice(agencyBets(1))); !errors.Is(err, store.ErrDrawDone) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("GroupCommit", func(t *testing.T) {
		// Four agencies append at once, with group commit, while a fifth
		// sends batches with an invalid bet: each refused batch fails alone,
		// every other batch is stored exactly once.
		s, err := store.Open(filepath.Join(t.TempDir(), "b.db"), store.Options{GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		refused := make(chan error, 1)
		go func() {
			for i := 0; i < 50; i++ {
				bad := []lottery.Bet{bet(5, "A", "B", "1", "1990-01-01", 1), bet(5, "A", "B", "x", "1990-01-01", 2)}
				var be *store.BetError
				if _, err := s.Append(5, 0, lottery.BetSlice(bad)); !errors.As(err, &be) || be.Index != 1 {
					refused <- fmt.Errorf("bad batch: %v", err)
					return
				}
			}
			refused <- nil
		}()
		done := make(chan error)
		for a := 1; a <= 4; a++ {
			go func() {
				for i := 0; i < 50; i += 5 {
					bs := make([]lottery.Bet, 5)
					for j := range bs {
						bs[j] = bet(a, "A", "B", strconv.Itoa(i+j), "1990-01-01", i+j)
					}
					if _, err := s.Append(a, uint64(i), lottery.BetSlice(bs)); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
		for range 4 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := <-refused; err != nil {
			t.Fatal(err)
		}
		if s.Groups() == 0 {
			t.Fatal("no group transaction committed")
		}
		r, err := s.Round()
		if err != nil || r.Bets != 200 || r.Committed[5] != 0 {
			t.Fatalf("round %+v, %v", r, err)
		}
		for a := 1; a <= 4; a++ {
			if r.Committed[a] != 50 {
				t.Fatalf("agency %d committed %d", a, r.Committed[a])
			}
		}
	})
}

func TestStore_RoundAndDraw(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreBets(tricky()); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(1, 2); err != nil {
		t.Fatal(err)
	}
	at := timeNow()
	if err := s.SaveDraw(at, 3, map[int][]string{1: {"0012"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delivered(3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Reopen keeps everything.
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Round()
	if err != nil {
		t.Fatal(err)
	}
	if r.Bets != 4 || !r.Delivered[3] || r.Delivered[1] || r.Committed[1] != 2 || r.Committed[2] != 1 || !r.Finished[1] || r.Finished[2] {
		t.Fatalf("round after reopen: %+v", r)
	}
	if !r.Drawn || !r.DrawTime.Equal(at) || !slices.Equal(r.Winners[1], []string{"0012"}) || len(r.Winners[2]) != 0 || r.Winners[2] == nil {
		t.Fatalf("draw after reopen: %+v", r)
	}
	if got := load(t, s); !slices.Equal(got, tricky()) {
		t.Fatalf("bets after reopen: %+v", got)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_ErrInvalidFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t.Run("Garbage", func(t *testing.T) {
		path := filepath.Join(dir, "garbage.db")
		junk := bytes.Repeat([]byte("not a bbolt file "), 1000)
		os.WriteFile(path, junk, 0o600)
		if _, err := store.Open(path, store.Options{}); !errors.Is(err, store.ErrInvalidFile) {
			t.Fatalf("got %v, want ErrInvalidFile", err)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, junk) {
			t.Fatal("garbage file was modified")
		}
	})
	t.Run("OtherBoltFile", func(t *testing.T) {
		path := filepath.Join(dir, "other.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("logs")); return err })
		db.Close()
		if _, err := store.Open(path, store.Options{}); !errors.Is(err, store.ErrInvalidFile) {
			t.Fatalf("got %v, want ErrInvalidFile", err)
		}
	})
}

func TestStore_Closed(t *testing.T) {
	t.Parallel()
	s := MustOpen(t)
	s.Close()
	if _, err := s.Append(1, 0, lottery.BetSlice(tricky()[:1])); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

func TestArchive(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bets.db")
	os.WriteFile(path, []byte("x"), 0o600)
	dst, err := store.Archive(path, timeNow())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dst), "bets-") || !strings.HasSuffix(dst, "Z.db") {
		t.Fatalf("archive name %s", dst)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("store file still in place")
	}
}

// Two rounds drawn at the same time (the clock stepped back) keep both
// archives: the second never overwrites the first.
func TestArchive_NeverOverwrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	at := timeNow()
	var names []string
	for _, content := range []string{"first round", "second round", "third round"} {
		path := filepath.Join(dir, "bets.db")
		os.WriteFile(path, []byte(content), 0o600)
		dst, err := store.Archive(path, at)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, dst)
	}
	for i, want := range []string{"first round", "second round", "third round"} {
		if got, err := os.ReadFile(names[i]); err != nil || string(got) != want {
			t.Fatalf("archive %s holds %q (%v), want %q", names[i], got, err, want)
		}
	}
	if !strings.HasSuffix(names[1], "Z-2.db") || !strings.HasSuffix(names[2], "Z-3.db") {
		t.Fatalf("archive names %v", names)
	}
}

func TestCSV_RoundTrip(t *testing.T) {
	t.Parallel()
	want := "1,Tomàs,D'Elia,0012,1980-01-01,7574\r\n" +
		"2,\"Ana, María\",\"Dijo \"\"hola\"\"\",30904465,1999-03-17,0\r\n" +
		"3, lead,trail ,1,2000-02-29,10\r\n" +
		"1,Ñandú,Álvarez,9999999999,2004-08-23,9999\r\n"
	var buf bytes.Buffer
	if err := store.WriteCSV(&buf, seq(tricky())); err != nil {
		t.Fatal(err)
	}
	if buf.String() != want {
		t.Fatalf("export:\n%q\nwant (as Python's csv.writer writes it)\n%q", buf.String(), want)
	}
	var got []lottery.Bet
	for b, err := range store.ReadCSV(strings.NewReader(want)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if !slices.Equal(got, tricky()) {
		t.Fatalf("read back %+v", got)
	}
	for _, row := range strings.Split(strings.TrimSpace(want), "\r\n") {
		b, err := store.ParseRow(row)
		if err != nil || string(store.AppendRow(nil, &b)) != row {
			t.Fatalf("ParseRow(%q) = %+v, %v", row, b, err)
		}
	}
}

func TestReadCSV_Malformed(t *testing.T) {
	t.Parallel()
	in := "1,A,B,1,1990-01-01,5\r\n1,A,B,1,1990-13-01,5\r\n"
	var errs []error
	for _, err := range store.ReadCSV(strings.NewReader(in)) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) != 1 || !errors.Is(errs[0], store.ErrRow) || !strings.Contains(errs[0].Error(), "line 2") {
		t.Fatalf("got %v", errs)
	}
	for _, row := range []string{"1,A,B,1,1990-01-01", "1,A,B,1,1990-01-01,5,6", "x,A,B,1,1990-01-01,5", "1,A,B,1,1990-01-01,five"} {
		if _, err := store.ParseRow(row); !errors.Is(err, store.ErrRow) {
			t.Errorf("ParseRow(%q) = %v, want ErrRow", row, err)
		}
	}
}

// datasetPath is the course's dataset as every program finds it, or skips
// the test, saying why.
func datasetPath(tb testing.TB) string {
	tb.Helper()
	path, from, err := dataset.Find()
	if err != nil {
		tb.Skipf("needs the course's dataset: %s", dataset.Describe(path, from, err))
	}
	return path
}

// readDataset returns the bets of the official dataset in agency order, or
// skips the test when the dataset is absent.
func readDataset(tb testing.TB) []lottery.Bet {
	tb.Helper()
	path := datasetPath(tb)
	z, err := zip.OpenReader(path)
	if err != nil {
		tb.Fatalf("the course's dataset %s: %v", path, err)
	}
	defer z.Close()
	re := regexp.MustCompile(`^agency-(\d+)\.csv$`)
	files := map[int]*zip.File{}
	for _, f := range z.File {
		if m := re.FindStringSubmatch(f.Name); m != nil {
			n, _ := strconv.Atoi(m[1])
			files[n] = f
		}
	}
	var out []lottery.Bet
	for a := 1; a <= len(files); a++ {
		rc, err := files[a].Open()
		if err != nil {
			tb.Fatal(err)
		}
		rows, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range rows {
			n, _ := strconv.Atoi(r[4])
			out = append(out, bet(a, r[0], r[1], r[2], r[3], n))
		}
	}
	return out
}

func TestExport_OfficialDatasetMatchesPython(t *testing.T) {
	t.Parallel()
	bets := readDataset(t)
	if len(bets) != 78697 {
		t.Fatalf("dataset has %d bets, want 78697", len(bets))
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not on PATH: cannot produce Python's bets.csv to compare with")
	}
	s := MustOpen(t)
	for i := 0; i < len(bets); i += 1000 {
		if err := s.StoreBets(bets[i:min(i+1000, len(bets))]); err != nil {
			t.Fatal(err)
		}
	}
	var got bytes.Buffer
	if err := s.Export(&got); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bets.csv")
	if b, err := exec.Command(python, "testdata/store_bets.py", datasetPath(t), out).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		i := 0
		for i < min(got.Len(), len(want)) && got.Bytes()[i] == want[i] {
			i++
		}
		t.Fatalf("export differs from Python's bets.csv at byte %d (got %d bytes, want %d)", i, got.Len(), len(want))
	}
	winners := 0
	for b, err := range s.LoadBets() {
		if err != nil {
			t.Fatal(err)
		}
		if lottery.HasWon(b) {
			winners++
		}
	}
	if winners != 10 {
		t.Fatalf("%d winners, want 2+3+3+2+0", winners)
	}
}

func TestStore_ScanBets(t *testing.T) {
	t.Parallel()
	s := MustOpen(t)
	if err := s.StoreBets(tricky()); err != nil {
		t.Fatal(err)
	}
	var got []lottery.Bet
	err := s.ScanBets(func(b *lottery.Bet) error {
		c := *b
		c.FirstName, c.LastName, c.Document = strings.Clone(b.FirstName), strings.Clone(b.LastName), strings.Clone(b.Document)
		got = append(got, c)
		return nil
	})
	if err != nil || !slices.Equal(got, tricky()) {
		t.Fatalf("ScanBets = %+v, %v", got, err)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ScanBets(func(*lottery.Bet) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("ScanBets did not stop on the callback's error: %v after %d", err, n)
	}
}

// A value that does not parse is reported, naming bucket and key, never
// read as zero (a committed count read as 0 would make the agency resend).
func TestStore_GarbledValues(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ bucket, key, value, want string }{
		{"agencies", "000001", "12x", "bucket agencies key 000001"},
		{"meta", "round_started", "yesterday", "bucket meta key round_started"},
		{"meta", "draw_time", "soon", "bucket meta key draw_time"},
		{"meta", "agencies", "five", "bucket meta key agencies"},
		{"digests", "000001", "zz", "bucket digests key 000001"},
	} {
		t.Run(tt.bucket+"/"+tt.key, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bets.db")
			s, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(1, 0, lottery.BetSlice(tricky()[:1])); err != nil {
				t.Fatal(err)
			}
			s.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(tt.bucket)).Put([]byte(tt.key), []byte(tt.value)) })
			db.Close()
			s, err = store.Open(path, store.Options{})
			if err == nil {
				_, err = s.Agency(1)
				if err == nil {
					_, err = s.Append(1, 1, lottery.BetSlice(tricky()[:1]))
				}
				s.Close()
			}
			if !errors.Is(err, store.ErrInvalidFile) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidFile naming %s", err, tt.want)
			}
		})
	}
}

// Append after Close fails cleanly, with group commit too.
func TestStore_GroupCommitClosed(t *testing.T) {
	t.Parallel()
	s, err := store.Open(filepath.Join(t.TempDir(), "b.db"), store.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(1, 0, lottery.BetSlice(tricky()[:1])); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Append(1, 1, lottery.BetSlice(tricky()[:1])); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

// ARCHIVE_KEEP: the newest archived rounds stay, the oldest go; nothing
// else beside the store is touched.
func TestPruneArchives(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bets.db")
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var names []string
	for i, at := range []time.Time{base, base.Add(time.Hour), base.Add(time.Hour), base.Add(2 * time.Hour)} {
		os.WriteFile(path, []byte(fmt.Sprint(i)), 0o600)
		dst, err := store.Archive(path, at)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, dst)
	}
	os.WriteFile(path, []byte("current"), 0o600)
	os.WriteFile(filepath.Join(dir, "other.db"), nil, 0o600)
	removed, err := store.PruneArchives(path, 2)
	if err != nil || len(removed) != 2 || removed[0] != names[0] || removed[1] != names[1] {
		t.Fatalf("removed %v, %v; want %v", removed, err, names[:2])
	}
	left, _ := store.Archives(path)
	if len(left) != 2 || left[0] != names[2] || left[1] != names[3] {
		t.Fatalf("left %v, want %v", left, names[2:])
	}
	for _, keep := range []string{path, filepath.Join(dir, "other.db")} {
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("%s was touched: %v", keep, err)
		}
	}
	if removed, _ := store.PruneArchives(path, 0); removed != nil {
		t.Fatal("keep 0 removed archives")
	}
}
