package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// realStore writes a closed store of a few agencies' bets, finishes and a
// draw, and returns its path and bytes.
func realStore(tb testing.TB) (string, []byte) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for a := 1; a <= 3; a++ {
		if _, err := s.Append(a, 0, lottery.BetSlice(testkit.Bets(a, 600))); err != nil {
			tb.Fatal(err)
		}
		if err := s.Finish(a, 600); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return path, data
}

// useStore does what a central does with a store, its file checked first
// in a process of its own, and returns the first error. It must never
// panic or hang, whatever the file holds.
func useStore(path string) error {
	s, err := store.Open(path, store.Options{Check: childCheck})
	if err != nil {
		return err
	}
	defer s.Close()
	steps := []func() error{
		func() error { _, err := s.Round(); return err },
		func() error { _, err := s.Agency(1); return err },
		func() error {
			_, err := s.Append(2, 600, lottery.BetSlice(testkit.Bets(2, 50)))
			if errors.Is(err, store.ErrFinished) || errors.Is(err, store.ErrDrawDone) {
				err = nil // a refusal: the file answered
			}
			return err
		},
		func() error { return s.ScanBets(func(*lottery.Bet) error { return nil }) },
		func() error {
			for _, err := range s.LoadBets() {
				if err != nil {
					return err
				}
			}
			return nil
		},
		func() error { return s.SaveDraw(timeNow(), 3, map[int][]string{1: {}, 2: {}, 3: {}}) },
		s.Check,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// A damaged store is refused with ErrInvalidFile and ErrDamaged naming the
// file: it never crashes or hangs the process that opens it, whatever the
// damage does to the process that checks it.
func TestStore_Damaged(t *testing.T) {
	t.Parallel()
	_, good := realStore(t)
	page := pageSize(t, good)
	junk := func(at int) []byte {
		d := append([]byte(nil), good...)
		for i := at; i < at+page && i < len(d); i++ {
			d[i] = byte(i*131 + 7)
		}
		return d
	}
	// Where the newest meta page puts the root and the freelist (bbolt
	// reuses pages, so they move from one run to the next).
	root, freelist := newestMeta(t, good, page)
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"Empty", nil, "is empty"},
		{"TruncatedToHalf", good[:len(good)/2], ""},
		{"TruncatedToMetas", good[:2*page], ""},
		{"JunkRoot", junk(root * page), ""},
		{"JunkFreelist", junk(freelist * page), ""},
		// A free page id that is a meta page: the draw's commit panics, and
		// bbolt's own rollback panics again, keeping its writer lock.
		{"MetaPageListedFree", poke(good, freelist*page+16, 1), ""},
		{"JunkMiddlePage", junk(len(good) / 2 / page * page), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bets.db")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- useStore(path) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the damaged store hung (Close waits for a lock bbolt never let go)")
			}
			if !errors.Is(err, store.ErrInvalidFile) || !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidFile naming %s (%q)", err, path, tt.want)
			}
		})
	}
}

// poke returns a copy of data with the byte at off set to b.
func poke(data []byte, off int, b byte) []byte {
	d := append([]byte(nil), data...)
	d[off] = b
	return d
}

// pageSize reads the page size of a store's first meta page (bbolt's
// layout: a 16-byte page header, then magic, version, page size).
func pageSize(t *testing.T, data []byte) int {
	t.Helper()
	size := int(binary.LittleEndian.Uint32(data[16+8:]))
	if size < 1024 || size&(size-1) != 0 {
		t.Fatalf("page size %d", size)
	}
	return size
}

// newestMeta reads the root and freelist page ids of data's newest meta
// page (bbolt's layout: a 16-byte page header, then magic, version, page
// size, flags, the root bucket's page and sequence, the freelist's page,
// the high-water mark, the transaction id). Tests use it to damage the
// pages a central would read first.
func newestMeta(t *testing.T, data []byte, page int) (root, freelist int) {
	t.Helper()
	var txid uint64
	for p := range 2 {
		m := data[p*page+16:]
		if id := binary.LittleEndian.Uint64(m[48:]); id >= txid {
			txid = id
			root, freelist = int(binary.LittleEndian.Uint64(m[16:])), int(binary.LittleEndian.Uint64(m[32:]))
		}
	}
	if root < 2 || freelist < 2 || root == freelist {
		t.Fatalf("meta pages: root %d, freelist %d", root, freelist)
	}
	return root, freelist
}

// A new path is a new store; an existing empty file is not.
func TestStore_EmptyFileIsNotNew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(filepath.Join(dir, "new.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, err := store.Open(empty, store.Options{}); !errors.Is(err, store.ErrInvalidFile) {
		t.Fatalf("an empty file opened: %v", err)
	}
	if st, _ := os.Stat(empty); st.Size() != 0 {
		t.Fatal("the refused file was written")
	}
}

// FuzzOpenDamaged damages a real store (bytes overwritten at an offset, the
// file cut short) and uses it as a central would: errors are fine, a panic
// or a fault is not.
func FuzzOpenDamaged(f *testing.F) {
	_, good := realStore(f)
	f.Add(uint32(2*4096), []byte{0xff, 0xff, 0xff, 0xff}, uint32(0))
	f.Add(uint32(3*4096+16), []byte("junk in a leaf"), uint32(0))
	f.Add(uint32(0), []byte{}, uint32(len(good)/3))
	f.Add(uint32(4096+40), []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0}, uint32(0))
	f.Fuzz(func(t *testing.T, at uint32, junk []byte, cut uint32) {
		d := append([]byte(nil), good...)
		if int(at) < len(d) {
			copy(d[at:], junk)
		}
		if cut > 0 && int(cut) < len(d) {
			d = d[:cut]
		}
		path := filepath.Join(t.TempDir(), "bets.db")
		if err := os.WriteFile(path, d, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := useStore(path); err != nil && !errors.Is(err, store.ErrInvalidFile) && !strings.Contains(err.Error(), path) {
			t.Logf("error not naming the file: %v", err)
		}
	})
}

// Damage that makes bbolt loop, overflow its stack or allocate without end
// (a cursor descending for ever through a branch page that names itself,
// or an inline bucket whose page says branch; bbolt's own Check recursing
// until its stack overflows; a commit freeing a freelist page of 400 M
// pages, or sizing a page from a value of 4 GB) is refused when the file is
// opened: the process that checks it crashes, loops until its bound or says
// so, and the process that opens it does not.
func TestStore_DamagedTree(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bets.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 { // 40 values: the bets bucket's root is a branch page
		if _, err := s.Append(1, uint64(i*100), lottery.BetSlice(testkit.Bets(1, 100))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := pageSize(t, good)
	le := binary.LittleEndian
	root, freelist := newestMeta(t, good, page)
	// The root bucket's leaf: the buckets by name, each element's value its
	// header (root page, sequence), an inline bucket's page after it.
	bucket := func(name string) (elem, value int) {
		p := good[root*page:]
		for i := range int(le.Uint16(p[10:])) {
			e := 16 + i*16
			pos, ksize := int(le.Uint32(p[e+4:])), int(le.Uint32(p[e+8:]))
			if string(p[e+pos:e+pos+ksize]) == name {
				return root*page + e, root*page + e + pos + ksize
			}
		}
		t.Fatalf("no bucket %q in the root page", name)
		return 0, 0
	}
	betsElem, betsValue := bucket("bets")
	betsRoot := int(le.Uint64(good[betsValue:]))
	if good[betsRoot*page+8] != 0x01 {
		t.Fatalf("the bets bucket's root page %d is not a branch page", betsRoot)
	}
	_, winners := bucket("winners") // empty: inline
	if le.Uint64(good[winners:]) != 0 {
		t.Fatal("the winners bucket is not inline")
	}
	set := func(off int, v uint64, n int) []byte {
		d := bytes.Clone(good)
		for i := range n {
			d[off+i] = byte(v >> (8 * i))
		}
		return d
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"BranchNamesItself", set(betsRoot*page+16+8, uint64(betsRoot), 8)},
		{"ChildPastTheEnd", set(betsRoot*page+16+8, 1<<40, 8)},
		{"InlineBucketSaysBranch", set(winners+16+8, 0x01, 2)},
		{"ValueOf4GB", set(betsElem+12, 0xFFFFFFF0, 4)},
		{"FreelistOf400MPages", set(freelist*page+12, 0x18181818, 4)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "bets.db")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := store.Open(path, store.Options{Check: childCheck})
			if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want ErrDamaged naming %s", err, path)
			}
			t.Log(err)
		})
	}
}
