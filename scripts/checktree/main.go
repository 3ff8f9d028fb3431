// Command checktree fails when the repository tracks what belongs outside
// it: a file over 1 MiB, an executable binary (ELF, PE, Mach-O) or a bbolt
// file (a store, a raft log). make lint runs it, so build output and run
// data cannot come back into git.
//
//	go run ./scripts/checktree        # checks `git ls-files` from the current folder
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// maxSize is the largest file the repository may track.
const maxSize = 1 << 20

func main() {
	out, err := exec.Command("git", "ls-files", "-z").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "checktree: git ls-files:", err)
		os.Exit(2)
	}
	bad := 0
	for _, name := range bytes.Split(bytes.TrimRight(out, "\x00"), []byte{0}) {
		if len(name) == 0 {
			continue
		}
		why, err := check(string(name))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet in the index
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "checktree: %s: %v\n", name, err)
			bad++
			continue
		}
		if why != "" {
			fmt.Fprintf(os.Stderr, "checktree: %s is tracked but is %s: git rm --cached it and ignore its path\n", name, why)
			bad++
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}

// check returns why the file at path must not be tracked, or "".
func check(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", nil // a symlink or submodule: git keeps no content here
	}
	if st.Size() > maxSize {
		return fmt.Sprintf("%d bytes, over %d", st.Size(), maxSize), nil
	}
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	return kind(head[:n]), nil
}

// bboltMagic is the magic number of a bbolt meta page (go.etcd.io/bbolt),
// after the 16-byte page header.
const bboltMagic = 0xED0CDAED

// kind names the forbidden kind of file whose first bytes are head, or "".
func kind(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		return "an ELF executable or object"
	case isPE(head):
		return "a PE (Windows) executable"
	case isMachO(head):
		return "a Mach-O (macOS) executable"
	case len(head) >= 24 && (binary.LittleEndian.Uint32(head[16:]) == bboltMagic || binary.BigEndian.Uint32(head[16:]) == bboltMagic):
		return "a bbolt file (a store or a raft log)"
	}
	return ""
}

// isPE reports a DOS header whose e_lfanew points at a PE signature.
func isPE(head []byte) bool {
	if len(head) < 0x40 || !bytes.HasPrefix(head, []byte("MZ")) {
		return false
	}
	off := int(binary.LittleEndian.Uint32(head[0x3c:]))
	return off >= 0x40 && off+4 <= len(head) && bytes.Equal(head[off:off+4], []byte("PE\x00\x00"))
}

func isMachO(head []byte) bool {
	if len(head) < 8 {
		return false
	}
	switch binary.BigEndian.Uint32(head) {
	case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe:
		return true
	case 0xcafebabe:
		// A fat (universal) binary, or a Java class file, which shares the
		// magic: a fat header's architecture count is small, a class file's
		// version is 45 or more.
		return binary.BigEndian.Uint32(head[4:]) < 45
	}
	return false
}
