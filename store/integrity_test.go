package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// roundStore writes a closed store of three agencies' bets (each in
// batches of 50, the agencies interleaved), finished and drawn, and returns
// its path and its bets.csv.
func roundStore(tb testing.TB) (string, []byte) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	names := []string{"Emanuel", "Santiago Lionel", "Ana", "Luz"}
	for off := 0; off < 200; off += 50 {
		for a := 1; a <= 3; a++ {
			var bets []lottery.Bet
			for i := off; i < off+50; i++ {
				bets = append(bets, lottery.Bet{Agency: a, FirstName: names[i%len(names)], LastName: "Lorca", Document: fmt.Sprint(30000000 + a*1000 + i),
					Birthdate: lottery.Date{Year: 1990, Month: 3, Day: 17}, Number: []int{7574, 12, 4, 99}[i%4]})
			}
			if _, err := s.Append(a, uint64(off), lottery.BetSlice(bets)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for a := 1; a <= 3; a++ {
		if err := s.Finish(a, 200); err != nil {
			tb.Fatal(err)
		}
	}
	rep, err := s.Verify()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.SaveDraw(timeNow(), 3, rep.Winners); err != nil {
		tb.Fatal(err)
	}
	var csv bytes.Buffer
	if err := s.Export(&csv); err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, csv.Bytes()
}

// tamper changes the store at path through bbolt, so that its pages stay
// sound: the change is in what they hold, where bbolt checks nothing.
func tamper(tb testing.TB, path string, fn func(tx *bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		tb.Fatal(err)
	}
}

// reads are every way the store's bets are read: each must refuse a
// damaged batch, and none may yield one of its rows.
var reads = map[string]func(s *store.Store) error{
	"ScanBets": func(s *store.Store) error { return s.ScanBets(func(*lottery.Bet) error { return nil }) },
	"LoadBets": func(s *store.Store) error {
		for _, err := range s.LoadBets() {
			if err != nil {
				return err
			}
		}
		return nil
	},
	"ScanWinners": func(s *store.Store) error {
		_, err := s.ScanWinners(func(*lottery.Bet) error { return nil })
		return err
	},
	"Export": func(s *store.Store) error { return s.Export(io.Discard) },
	"Verify": func(s *store.Store) error { _, err := s.Verify(); return err },
	"Backup": func(s *store.Store) error { _, err := s.Backup(io.Discard); return err },
}

// A change to what a store holds, its pages sound, is found by every read
// of the bets, which names the file, and the batch (its agency, first and
// last registry numbers) or the agency it is found in: a changed digit of
// a document, a changed byte of a checksum record, two batches swapped (with
// or without their records), a batch removed. The rows of a batch that
// fails are never yielded.
func TestStore_ChecksumsFindChangedBytes(t *testing.T) {
	t.Parallel()
	good, _ := roundStore(t)
	flipDigit := func(v []byte) []byte {
		i := bytes.IndexByte(v, '3') // the first digit of the first row's document
		return append(append(bytes.Clone(v[:i]), '8'), v[i+1:]...)
	}
	for _, tt := range []struct {
		name   string
		change func(tx *bolt.Tx) error
		want   string
	}{
		{"DigitOfADocument", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("bets"))
			k, v := b.Cursor().First()
			return b.Put(bytes.Clone(k), flipDigit(v))
		}, "batch 000000000001..000000000050 of agency 1"},
		{"ByteOfAChecksum", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("bets"))
			k := []byte("000000000051")
			v := bytes.Clone(b.Get(k))
			v[len(v)-1] ^= 1
			return b.Put(k, v)
		}, "batch 000000000051..000000000100 of agency 2"},
		{"ChecksumRecordCut", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("bets"))
			k := []byte("000000000051")
			v := b.Get(k)
			return b.Put(k, bytes.Clone(v[:bytes.LastIndexByte(v, '\n')]))
		}, "key 000000000051: the batch has no checksum record"},
		{"SwappedBatches", func(tx *bolt.Tx) error { // their records with them: the key is in the CRC
			b := tx.Bucket([]byte("bets"))
			k1, k2 := []byte("000000000051"), []byte("000000000101")
			v1, v2 := bytes.Clone(b.Get(k1)), bytes.Clone(b.Get(k2))
			return errors.Join(b.Put(k1, v2), b.Put(k2, v1))
		}, "its checksum is"},
		{"SwappedRecords", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("bets"))
			k1, k2 := []byte("000000000051"), []byte("000000000101")
			v1, v2 := bytes.Clone(b.Get(k1)), bytes.Clone(b.Get(k2))
			i1, i2 := bytes.LastIndexByte(v1, '\n'), bytes.LastIndexByte(v2, '\n')
			return errors.Join(b.Put(k1, append(v1[:i1:i1], v2[i2:]...)), b.Put(k2, append(v2[:i2:i2], v1[i1:]...)))
		}, "batch 000000000051..000000000100"},
		{"BatchRemoved", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("bets")).Delete([]byte("000000000051"))
		}, "starts at bet 101, where bet 51 was due"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "bets.db")
			copyFile(t, good, path)
			tamper(t, path, tt.change)
			for name, read := range reads {
				s, err := store.Open(path, store.Options{ReadOnly: true})
				if err != nil {
					t.Fatal(err)
				}
				err = read(s)
				s.Close()
				if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s = %v, want ErrDamaged naming %s and %q", name, err, path, tt.want)
				}
			}
		})
	}
}

// A store whose rows and checksum records were changed together (a
// changed row written with a new record, as someone editing the file
// would) is still held to each agency's count, finish and digest, and once
// drawn, to its winners: Verify names the agency.
func TestStore_VerifyHoldsAgenciesToTheirRows(t *testing.T) {
	t.Parallel()
	good, _ := roundStore(t)
	rewrite := func(tx *bolt.Tx, key string, fn func(v []byte) []byte) error {
		b := tx.Bucket([]byte("bets"))
		k := []byte(key)
		stored := bytes.Clone(b.Get(k))
		i := bytes.LastIndexByte(stored, '\n')
		v, rec := fn(stored[:i]), string(stored[i+2:])
		agency, rows, _ := strings.Cut(rec, ",")
		rows, _, _ = strings.Cut(rows, ",")
		sum := crc32.Update(crc32.Update(0, crc32.MakeTable(crc32.Castagnoli), k), crc32.MakeTable(crc32.Castagnoli), v)
		return b.Put(k, fmt.Appendf(v, "\n#%s,%s,%08x", agency, rows, sum))
	}
	for _, tt := range []struct {
		name   string
		change func(tx *bolt.Tx) error
		want   string
	}{
		{"NameChangedWithItsChecksum", func(tx *bolt.Tx) error {
			return rewrite(tx, "000000000051", func(v []byte) []byte { return bytes.Replace(v, []byte("Emanuel"), []byte("Qmanuel"), 1) })
		}, "agency 2: its digest is not that of its rows"},
		{"NumberChangedToWinWithItsChecksum", func(tx *bolt.Tx) error {
			return rewrite(tx, "000000000101", func(v []byte) []byte { return bytes.Replace(v, []byte(",12\n"), []byte(",7574\n"), 1) })
		}, "agency 3: its digest is not that of its rows"},
		{"CountChanged", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("agencies")).Put([]byte("000003"), []byte("199"))
		}, "agency 3: 199 bets committed, its rows hold 200"},
		{"FinishChanged", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("finished")).Put([]byte("000001"), []byte("201"))
		}, "agency 1: it finished with 201 bets"},
		{"DigestChanged", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("digests"))
			v := bytes.Clone(b.Get([]byte("000002")))
			v[len(v)-3] ^= 1
			return b.Put([]byte("000002"), v)
		}, "agency 2: its digest is not that of its rows"},
		{"WinnerChanged", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("winners"))
			v := bytes.Replace(b.Get([]byte("000001")), []byte("3000100"), []byte("4000100"), 1)
			return b.Put([]byte("000001"), v)
		}, "agency 1: its stored winners"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "bets.db")
			copyFile(t, good, path)
			tamper(t, path, tt.change)
			s, err := store.Open(path, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Verify()
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want ErrDamaged: %q", err, tt.want)
			}
		})
	}
}

// A backup with one letter of a name changed, or any one byte flipped, is
// refused by Restore, or restored as it was: a restored store never holds
// a row nobody stored.
func TestRestore_RefusesChangedBackups(t *testing.T) {
	t.Parallel()
	good, csv := roundStore(t)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("Emanuel"))
	if i < 0 {
		t.Fatal("no Emanuel in the store")
	}
	backups := map[string][]byte{"EmanuelToQmanuel": append(append(bytes.Clone(data[:i]), 'Q'), data[i+1:]...)}
	rng := rand.New(rand.NewPCG(30, 30))
	for n := range 40 {
		d := bytes.Clone(data)
		d[rng.IntN(len(d))] ^= byte(1 + rng.IntN(255))
		backups[fmt.Sprintf("Flip%02d", n)] = d
	}
	refused := 0
	for name, b := range backups {
		path := filepath.Join(t.TempDir(), "bets.db")
		err := store.Restore(path, bytes.NewReader(b), childCheck)
		if err != nil {
			if !errors.Is(err, store.ErrInvalidFile) {
				t.Errorf("%s: Restore = %v, want ErrInvalidFile", name, err)
			}
			refused++
			continue
		}
		if name == "EmanuelToQmanuel" {
			t.Errorf("a backup with Emanuel turned into Qmanuel was restored")
		}
		s, err := store.Open(path, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("%s: restored, then %v", name, err)
		}
		var out bytes.Buffer
		err = s.Export(&out)
		s.Close()
		if err == nil && !bytes.Equal(out.Bytes(), csv) {
			t.Errorf("%s: restored a store that exports other rows", name)
		}
	}
	t.Logf("%d of %d changed backups refused, the others restored as they were", refused, len(backups))
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}
