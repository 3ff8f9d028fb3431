package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
)

// A damaged store must be refused with ErrInvalidFile, never crash the
// central (and crash it again at every restart). bbolt checks its meta
// pages' checksums but trusts the rest: a file shorter than its meta page
// says faults (SIGBUS) on the first read of a page past the end, and junk in
// a branch or leaf page makes bbolt panic. checkFile catches the first before
// the file is mapped; guard turns the second, and any fault on the map, into
// errors at the store's boundary, and marks the store damaged so that every
// later call fails the same way.

// Hint says what an operator can do about a damaged store; the central logs it.
const Hint = "restore the file from a backup, inspect it with 'server export --db FILE --check' (not 'bbolt check', which a damaged page tree can crash), or move it aside to start a new round (the file is left as it is)"

// bbolt's meta page, as it lays it out (internal/common): a 16-byte page
// header, then magic, version, page size, flags, the root bucket (16 bytes),
// the freelist's page, the high-water page id, the txid and an FNV-64a
// checksum of what precedes it, in the machine's byte order (little-endian
// on every platform this runs on).
const (
	pageHeader   = 16
	metaMagic    = 0xED0CDAED
	metaVersion  = 2
	metaPgid     = 40 // offsets inside the meta
	metaTxid     = 48
	metaChecksum = 56
	metaSize     = 64
)

type metaPage struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64 // the freelist's page (^0: not stored, NoFreelistSync)
	pgid     uint64 // pages in use: the file must hold pgid × pageSize bytes
	txid     uint64
}

// readMeta parses the meta at buf (a page), or reports that it is not valid.
func readMeta(buf []byte) (metaPage, bool) {
	if len(buf) < pageHeader+metaSize {
		return metaPage{}, false
	}
	m := buf[pageHeader : pageHeader+metaSize]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:metaChecksum])
	if le.Uint32(m[0:]) != metaMagic || le.Uint32(m[4:]) != metaVersion || le.Uint64(m[metaChecksum:]) != h.Sum64() {
		return metaPage{}, false
	}
	return metaPage{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[metaRoot:]), freelist: le.Uint64(m[metaFreelist:]), pgid: le.Uint64(m[metaPgid:]), txid: le.Uint64(m[metaTxid:])}, true
}

// checkFile refuses, before bbolt maps it, a file that exists but cannot be a
// whole store: an empty one (bbolt would silently start a new round in it)
// and one shorter than its newest valid meta page says. A missing file is
// fine (a new store); files whose metas are both invalid are left to bbolt,
// which refuses them.
func checkFile(path string) error {
	size, best, ok, err := newestMeta(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if size == 0 {
		return fmt.Errorf("%w (%w): %s is empty (0 bytes), which no store is (a new store is a path that does not exist)", ErrInvalidFile, ErrDamaged, path)
	}
	if !ok {
		return nil
	}
	if need := best.pgid * uint64(best.pageSize); uint64(size) < need {
		return fmt.Errorf("%w (%w): %s is truncated: %d bytes, but its meta page says %d are in use", ErrInvalidFile, ErrDamaged, path, size, need)
	}
	return nil
}

// newestMeta reads the file's size and its newest valid meta page (ok false
// when neither is valid).
func newestMeta(path string) (size int64, best metaPage, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, metaPage{}, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, metaPage{}, false, err
	}
	buf := make([]byte, 64<<10)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, metaPage{}, false, err
	}
	buf = buf[:n]
	best, ok = readMeta(buf)
	if ok && uint64(best.pageSize) < uint64(len(buf)) {
		if m1, ok1 := readMeta(buf[best.pageSize:]); ok1 && m1.txid > best.txid {
			best = m1
		}
	} else if !ok {
		for _, size := range []int{4096, 8192, 16384, 32768} { // meta 0 damaged: find meta 1
			if size < len(buf) {
				if m1, ok1 := readMeta(buf[size:]); ok1 && int(m1.pageSize) == size {
					best, ok = m1, true
					break
				}
			}
		}
	}
	return st.Size(), best, ok, nil
}

// FileState is what a closed store file says of itself without being
// opened: its size and the id of its newest committed transaction. A
// replica records it when it stops cleanly, and trusts its file at the
// next start only if it reads the same (package cluster).
type FileState struct {
	Size int64  `json:"size"`
	TxID uint64 `json:"txid"`
}

// ReadFileState reads the state of the store file at path. A file with no
// valid meta page is ErrInvalidFile.
func ReadFileState(path string) (FileState, error) {
	size, m, ok, err := newestMeta(path)
	if err != nil {
		return FileState{}, err
	}
	if !ok {
		return FileState{}, fmt.Errorf("%w: %s has no valid meta page", ErrInvalidFile, path)
	}
	return FileState{Size: size, TxID: m.txid}, nil
}

// guard turns a panic of bbolt on a damaged page (or a fault on the map,
// with SetPanicOnFault) into ErrInvalidFile in *err, and marks the store
// damaged. Use as: defer debug.SetPanicOnFault(debug.SetPanicOnFault(true));
// defer s.guard(&err).
func (s *Store) guard(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if cp, ok := r.(callerPanic); ok {
		panic(cp.v) // the caller's own code panicked, not bbolt
	}
	damage := fmt.Errorf("%w (%w): %s: bbolt: %v", ErrInvalidFile, ErrDamaged, s.path, r)
	s.damaged.CompareAndSwap(nil, &damage)
	*err = *s.damaged.Load()
}

// damage returns the error of a store found damaged, or nil.
func (s *Store) damage() error {
	if p := s.damaged.Load(); p != nil {
		return *p
	}
	return nil
}

// errDamagedData marks an error about what the file holds (a stored row
// that does not parse): safe turns it into the store's damage error.
var errDamagedData = errors.New("damaged data")

// safe runs fn with faults on the map turned into panics, and panics and
// damaged data into the store's damage error.
func (s *Store) safe(fn func() error) (err error) {
	if err := s.damage(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(&err)
	if err = fn(); errors.Is(err, errDamagedData) {
		damage := fmt.Errorf("%w (%w): %s: %w", ErrInvalidFile, ErrDamaged, s.path, err)
		s.damaged.CompareAndSwap(nil, &damage)
		err = *s.damaged.Load()
	}
	return err
}

// callerPanic carries a panic of the caller's callback through guard, which
// lets it go on: only bbolt's own panics mean a damaged file.
type callerPanic struct{ v any }

// callerFunc wraps a callback of the caller's that runs inside a
// transaction: a panic of its own crosses guard as the caller's. One
// wrapper serves a whole scan (a closure per call was an allocation per bet).
func callerFunc[A, T any](fn func(A) T) func(A) T {
	return func(a A) T {
		defer func() {
			if r := recover(); r != nil {
				panic(callerPanic{r})
			}
		}()
		return fn(a)
	}
}
