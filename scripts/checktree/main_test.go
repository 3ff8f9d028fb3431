package main

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestKind(t *testing.T) {
	pe := make([]byte, 0x100)
	copy(pe, "MZ")
	binary.LittleEndian.PutUint32(pe[0x3c:], 0x80)
	copy(pe[0x80:], "PE\x00\x00")
	mzText := []byte("MZ is how this text begins, and nothing else about it is a program.......................")
	fat := []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2}
	class := []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52}
	for _, tc := range []struct {
		name string
		head []byte
		bad  bool
	}{
		{"ELF", []byte("\x7fELF\x02\x01\x01"), true},
		{"PE", pe, true},
		{"Mach-O 64", []byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, true},
		{"Mach-O fat", fat, true},
		{"Java class", class, false},
		{"text starting with MZ", mzText, false},
		{"Go source", []byte("package main\n\nfunc main() {}\n"), false},
		{"PNG", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x10"), false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := kind(tc.head); (got != "") != tc.bad {
				t.Fatalf("kind = %q, want forbidden: %t", got, tc.bad)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "x.db")
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if why, err := check(db); err != nil || why == "" {
		t.Fatalf("a bbolt file: %q, %v", why, err)
	}
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, make([]byte, maxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if why, _ := check(big); why == "" {
		t.Fatal("a file over 1 MiB passed")
	}
	small := filepath.Join(dir, "ok.md")
	os.WriteFile(small, []byte("# fine\n"), 0o644)
	if why, err := check(small); err != nil || why != "" {
		t.Fatalf("a small text file: %q, %v", why, err)
	}
}
