package store_test

import (
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// values returns the bets bucket of the store file at path, key by key.
func values(t *testing.T, path string) map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("bets")).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out
}

// A batch is one value of the bets bucket: its new bets' rows, one per
// line, under the number of the first, then its checksum record (agency,
// rows, CRC-32C of key and rows); a retried batch stores only what was not
// stored before.
func TestStore_BatchIsOneValue(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bets := []lottery.Bet{
		bet(1, "Tomàs", "D'Elia", "0012", "1980-01-01", 7574),
		bet(1, "Ana, María", `Dijo "hola"`, "30904465", "1999-03-17", 0),
		bet(1, "Ñandú", "Álvarez", "9999999999", "2004-08-23", 9999),
		bet(1, "Luz", "Paz", "77", "1970-12-31", 7574),
	}
	if _, err := s.Append(1, 0, lottery.BetSlice(bets[:2])); err != nil {
		t.Fatal(err)
	}
	// A retry of the first bet with two new ones.
	if r, err := s.Append(1, 1, lottery.BetSlice(bets[1:])); err != nil || r.Stored != 2 || r.Committed != 4 {
		t.Fatalf("retry: %+v, %v", r, err)
	}
	if n, err := s.Count(); n != 4 || err != nil {
		t.Fatalf("Count = %d, %v", n, err)
	}
	if got := load(t, s); !slices.Equal(got, bets) {
		t.Fatalf("LoadBets = %+v", got)
	}
	s.Close()
	summed := func(key, rows string) string {
		crc := crc32.Update(crc32.Update(0, crc32.MakeTable(crc32.Castagnoli), []byte(key)), crc32.MakeTable(crc32.Castagnoli), []byte(rows))
		return fmt.Sprintf("%s\n#1,2,%08x", rows, crc)
	}
	want := map[string]string{
		"000000000001": summed("000000000001", "1,Tomàs,D'Elia,0012,1980-01-01,7574\n"+`1,"Ana, María","Dijo ""hola""",30904465,1999-03-17,0`),
		"000000000003": summed("000000000003", "1,Ñandú,Álvarez,9999999999,2004-08-23,9999\n1,Luz,Paz,77,1970-12-31,7574"),
	}
	if got := values(t, path); !maps.Equal(got, want) {
		t.Fatalf("bets bucket = %q, want %q", got, want)
	}
}

// A store of format 1, written before checksum records and one row per
// value (as before batches were one value), is read as it is when opened
// read-only, and converted when opened for writing: every value gets its
// record, and it is read, drawn and appended to as any other.
func TestStore_ReadsOneRowPerValue(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	old := []lottery.Bet{bet(1, "Ana", "Paz", "1", "1990-01-01", 7574), bet(1, "Luz", "Sol", "2", "1991-02-02", 12)}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("tp0-bets-1")); err != nil {
			return err
		}
		b := tx.Bucket([]byte("bets"))
		for i := range old {
			seq, _ := b.NextSequence()
			if err := b.Put(fmt.Appendf(nil, "%012d", seq), store.AppendRow(nil, &old[i])); err != nil {
				return err
			}
		}
		return errors.Join(tx.Bucket([]byte("agencies")).Put([]byte("000001"), []byte("2")), tx.Bucket([]byte("digests")).Delete([]byte("000001")))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	ro, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, ro); !slices.Equal(got, old) {
		t.Fatalf("LoadBets of format 1, read-only = %+v", got)
	}
	if rep, err := ro.Verify(); err != nil || rep.Checksummed() || rep.Bets != 2 || rep.Digests != 0 {
		t.Fatalf("Verify of format 1 = %+v, %v", rep, err)
	}
	ro.Close()
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rep, err := s.Verify(); err != nil || !rep.Checksummed() || rep.Batches != 2 {
		t.Fatalf("Verify once converted = %+v, %v", rep, err)
	}
	more := []lottery.Bet{bet(1, "Sol", "Mar", "3", "1992-03-03", 7574)}
	if _, err := s.Append(1, 2, lottery.BetSlice(more)); err != nil {
		t.Fatal(err)
	}
	all := append(old, more...)
	if got := load(t, s); !slices.Equal(got, all) {
		t.Fatalf("LoadBets = %+v", got)
	}
	var won []string
	scanned, err := s.ScanWinners(func(b *lottery.Bet) error { won = append(won, strings.Clone(b.Document)); return nil })
	if err != nil || scanned != 3 || !slices.Equal(won, []string{"1", "3"}) {
		t.Fatalf("ScanWinners = %v over %d, %v", won, scanned, err)
	}
}

// ScanWinners yields exactly the bets HasWon picks, whatever the number
// field looks like (leading zeros, the winning number among others).
func TestStore_ScanWinners(t *testing.T) {
	t.Parallel()
	s := MustOpen(t)
	var bets []lottery.Bet
	for i, n := range []int{7574, 0, 757, 4, 9999, 7574, 1, 7575, 7573} {
		bets = append(bets, bet(1+i%3, "Ana", "Paz", strconv.Itoa(100+i), "1990-01-01", n))
	}
	if err := s.StoreBets(bets); err != nil {
		t.Fatal(err)
	}
	var want, got []lottery.Bet
	for _, b := range bets {
		if lottery.HasWon(b) {
			want = append(want, b)
		}
	}
	scanned, err := s.ScanWinners(func(b *lottery.Bet) error {
		c := *b
		c.FirstName, c.LastName, c.Document = strings.Clone(b.FirstName), strings.Clone(b.LastName), strings.Clone(b.Document)
		got = append(got, c)
		return nil
	})
	if err != nil || scanned != uint64(len(bets)) || !slices.Equal(got, want) {
		t.Fatalf("ScanWinners = %+v over %d, %v; want %+v", got, scanned, err, want)
	}
}

// A panic in the caller's callback is the caller's: it goes on up, and the
// store is not taken for damaged (only bbolt's own panics are).
func TestStore_CallbackPanicIsTheCallers(t *testing.T) {
	t.Parallel()
	s := MustOpen(t)
	if err := s.StoreBets(tricky()); err != nil {
		t.Fatal(err)
	}
	for name, scan := range map[string]func(func(*lottery.Bet) error){
		"ScanBets":    func(fn func(*lottery.Bet) error) { s.ScanBets(fn) },
		"ScanWinners": func(fn func(*lottery.Bet) error) { s.ScanWinners(fn) },
		"LoadBets": func(fn func(*lottery.Bet) error) {
			for b := range s.LoadBets() {
				fn(&b)
			}
		},
	} {
		got := func() (r any) {
			defer func() { r = recover() }()
			scan(func(*lottery.Bet) error { panic("mine") })
			return nil
		}()
		if got != "mine" {
			t.Fatalf("%s: recovered %v, want the callback's own panic", name, got)
		}
		if _, err := s.Round(); err != nil {
			t.Fatalf("%s: the store is taken for damaged after the caller's panic: %v", name, err)
		}
	}
}
