package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

// CheckStoreCommand is the subcommand that checks a store file in a
// process of its own: the server runs it, as a child, on every store file
// before it opens it (StoreCheck).
const CheckStoreCommand = "check-store"

const checkStoreUsage = `usage: server check-store FILE

Checks the store file FILE read-only, in this process: bbolt's check of its
pages, then every batch held to its checksum record and every agency's count,
finish, digest and winners to its rows. Exit 0 when it is sound, 1 when it is
damaged (the last line says where), 3 when a central holds it. The server runs
it as a child process, bounded in time, before it opens a store file: a
damaged page tree that would crash or hang a process crashes or hangs this one.
`

// CheckStore runs `server check-store FILE`.
func CheckStore(args []string, stdout, stderr io.Writer) int {
	fs := newFlags(CheckStoreCommand)
	pos, err := parseArgs(fs, args)
	if err == nil && len(pos) != 1 {
		err = errors.New("one store file is needed")
	}
	if err != nil {
		return usageErr(stdout, stderr, CheckStoreCommand, checkStoreUsage, err)
	}
	rep, err := store.CheckFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "server %s: %v\n", CheckStoreCommand, err)
		return store.ChildExit(err)
	}
	fmt.Fprintf(stdout, "%s: %s\n", pos[0], describe(rep))
	return exitOK
}

// describe says what a check held the store to.
func describe(rep store.Report) string {
	if !rep.Checksummed() {
		return fmt.Sprintf("ok (bbolt's check; format 1, written before checksum records: %d agencies' rows held to their counts and %d to their digests)", rep.Agencies, rep.Digests)
	}
	return fmt.Sprintf("ok (bbolt's check; %d batches held to their checksums; %d agencies' rows to their counts, %d to their digests; the winners to the draw)", rep.Batches, rep.Agencies, rep.Digests)
}

// StoreCheck checks a store file in a child process of this program
// (`server check-store FILE`), bounded in time.
func StoreCheck() store.FileCheck {
	return store.InChild{Command: func(ctx context.Context, path string) *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		return exec.CommandContext(ctx, exe, CheckStoreCommand, path)
	}}.Check
}

// lockWait bounds the wait for a store a central holds.
const lockWait = 3 * time.Second

// openChecked opens the store file at path read-only, once a child
// process found it sound. A file a central holds is ErrLocked, said so.
func openChecked(path string) (*store.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	s, err := store.Open(path, store.Options{ReadOnly: true, LockTimeout: lockWait, Check: StoreCheck()})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w: a central is running on %s (it holds the file's lock); stop it, or copy the file and export the copy", err, path)
	}
	return s, err
}
