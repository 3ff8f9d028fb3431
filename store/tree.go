package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// bbolt follows the page ids it reads without a check: a damaged branch
// page that points back at itself or at an ancestor makes a cursor descend
// forever (a read that never returns, a stack that grows until memory runs
// out), and bbolt's own Check recurses until the goroutine's stack overflows,
// which no recover catches. checkTree walks the page tree of the newest
// meta page first, the way bbolt will, and refuses such a file; and since a
// commit frees every page of the freelist's page range and hands out the
// ids it lists, it checks those too.

// Page headers and elements, as bbolt lays them out (internal/common). A
// page is a leaf when its flags are exactly pageLeaf; a cursor descends
// into any other.
const (
	pageBranch   = 0x01
	pageLeaf     = 0x02
	leafBucket   = 0x01 // a leaf element whose value is a bucket
	elementSize  = 16   // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	bucketHeader = 16   // a bucket's value: its root page u64 (0: inline), sequence u64
	pageFreelist = 0x10
	metaRoot     = 16 // the root bucket's page, inside the meta
	metaFreelist = 32 // the freelist's page, inside the meta
	maxTreeDepth = 64 // far beyond any tree a file can hold
)

// errTree wraps what checkTree finds.
var errTree = errors.New("damaged page tree")

// checkTree walks every bucket's tree in the file at path from its newest
// valid meta page, reading page headers and element arrays (never values):
// a page id past the pages in use or on a meta page, a page reached twice
// (a cycle, or two trees sharing it), a page that is neither branch nor leaf
// inside a tree, or a tree deeper than any real one is ErrDamaged. The file
// must be locked against writers (bbolt's lock, taken by Open).
func checkTree(path string) error {
	_, m, ok, err := newestMeta(path)
	if err != nil || !ok {
		return err // no valid meta: bbolt refused the file already
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := treeWalk{f: f, meta: m, seen: map[uint64]bool{}}
	err = w.walk(m.root, 0)
	if err == nil {
		err = w.freelist()
	}
	if err != nil {
		return fmt.Errorf("%w (%w): %s: %w", ErrInvalidFile, ErrDamaged, path, err)
	}
	return nil
}

type treeWalk struct {
	f    *os.File
	meta metaPage
	seen map[uint64]bool
	buf  []byte
}

// walk checks the tree whose root is page id, depth levels down.
func (w *treeWalk) walk(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: deeper than %d levels at page %d", errTree, maxTreeDepth, id)
	}
	if id < 2 || id >= w.meta.pgid {
		return fmt.Errorf("%w: page id %d outside the %d pages in use", errTree, id, w.meta.pgid)
	}
	if w.seen[id] {
		return fmt.Errorf("%w: page %d reached twice (a cycle)", errTree, id)
	}
	w.seen[id] = true
	return w.page(int64(id)*int64(w.meta.pageSize), 0, id, depth)
}

// page checks the page at byte off of the file, which ends at byte end:
// page id of a tree, or an inline bucket's page (id 0) inside its value,
// which bbolt reads as a leaf (a cursor would go back to it forever if it
// said it was a branch). Every element's key and value must lie inside the
// page: bbolt sizes what it writes back from their lengths.
func (w *treeWalk) page(off, end int64, id uint64, depth int) error {
	le := binary.LittleEndian
	hdr, err := w.read(off, pageHeader)
	if err != nil {
		return err
	}
	flags, count, overflow := le.Uint16(hdr[8:]), int64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if id != 0 {
		end = off + int64(overflow+1)*int64(w.meta.pageSize)
	}
	switch {
	case id == 0 && flags != pageLeaf:
		return fmt.Errorf("%w: an inline bucket at byte %d is not a leaf page", errTree, off)
	case id != 0 && (le.Uint64(hdr) != id || id+overflow >= w.meta.pgid || flags != pageBranch && flags != pageLeaf):
		return fmt.Errorf("%w: page %d is not a branch or leaf page of the tree", errTree, id)
	case off+pageHeader+count*elementSize > end:
		return fmt.Errorf("%w: the page at byte %d holds more elements than it has room for", errTree, off)
	}
	elems, err := w.read(off+pageHeader, int(count)*elementSize)
	if err != nil {
		return err
	}
	elems = append([]byte(nil), elems...) // the walk below reuses the read buffer
	for i := range count {
		e := elems[i*elementSize:]
		at := off + pageHeader + i*elementSize // an element's key is pos bytes from it
		if flags == pageBranch {
			if at+int64(le.Uint32(e))+int64(le.Uint32(e[4:])) > end {
				return fmt.Errorf("%w: element %d of the page at byte %d lies past its end", errTree, i, off)
			}
			if err := w.walk(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		pos, ksize, vsize := int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		value := at + pos + ksize
		if value+vsize > end {
			return fmt.Errorf("%w: element %d of the page at byte %d lies past its end", errTree, i, off)
		}
		if le.Uint32(e)&leafBucket == 0 {
			continue
		}
		// A bucket: its header is the value; an inline bucket's page
		// follows the header, inside the value.
		if vsize < bucketHeader {
			return fmt.Errorf("%w: element %d of the page at byte %d is a bucket of %d bytes", errTree, i, off, vsize)
		}
		b, err := w.read(value, bucketHeader)
		if err != nil {
			return err
		}
		if root := le.Uint64(b); root != 0 {
			err = w.walk(root, depth+1)
		} else if depth < maxTreeDepth {
			err = w.page(value+bucketHeader, value+vsize, 0, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// freelist checks the freelist page of the meta, if the file keeps one: a
// freelist page in range, whose ids are pages in use that no tree reaches.
func (w *treeWalk) freelist() error {
	id := w.meta.freelist
	if id == ^uint64(0) {
		return nil
	}
	if id < 2 || id >= w.meta.pgid || w.seen[id] {
		return fmt.Errorf("%w: freelist page id %d is not a free page of the %d in use", errTree, id, w.meta.pgid)
	}
	le := binary.LittleEndian
	off := int64(id) * int64(w.meta.pageSize)
	hdr, err := w.read(off, pageHeader+8)
	if err != nil {
		return err
	}
	flags, count, overflow := le.Uint16(hdr[8:]), int64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	at := off + pageHeader
	if count == 0xFFFF { // more ids than a u16 counts: the first element is the count
		count, at = int64(le.Uint64(hdr[pageHeader:])), at+8
	}
	if le.Uint64(hdr) != id || flags != pageFreelist || id+overflow >= w.meta.pgid || at-off+count*8 > int64(overflow+1)*int64(w.meta.pageSize) {
		return fmt.Errorf("%w: page %d is not the freelist page the meta names", errTree, id)
	}
	ids, err := w.read(at, int(count)*8)
	if err != nil {
		return err
	}
	for i := range int(count) {
		if free := le.Uint64(ids[i*8:]); free < 2 || free >= w.meta.pgid || w.seen[free] {
			return fmt.Errorf("%w: the freelist lists page %d, which is not a free page", errTree, free)
		}
	}
	return nil
}

// read returns n bytes of the file at off, in a buffer the next read reuses.
func (w *treeWalk) read(off int64, n int) ([]byte, error) {
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	b := w.buf[:n]
	if _, err := w.f.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: page at byte %d is past the end of the file", errTree, off)
		}
		return nil, err
	}
	return b, nil
}
