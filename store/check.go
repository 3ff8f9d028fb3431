package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A damaged store must be refused, never crash or hang the process that
// opens it (and crash it again at every restart). bbolt checks the
// checksums of its meta pages and trusts every other page: a branch page
// that names itself makes a cursor descend for ever and bbolt's own Check
// recurse until the goroutine's stack overflows, which no recover catches;
// a freelist or a value with a length of gigabytes makes it allocate or
// read without end; a file shorter than its pages faults on the map. The
// store does not second-guess bbolt's page format: CheckFile runs bbolt's
// own Check and then reads every value (Verify), and InChild runs it in
// another process, bounded in time, so that whatever the file does to that
// process is a refusal in this one.

// FileCheck checks the store file at path before it is opened: nil when
// the file may be opened, an error wrapping ErrDamaged when it is damaged.
type FileCheck func(path string) error

// CheckFile checks the store file at path in this process, read-only:
// bbolt's Check of its pages, then Verify of what they hold. It is what a
// FileCheck's other process runs: a damaged page tree may crash or hang it.
func CheckFile(path string) (Report, error) {
	db, err := openBolt(path, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return Report{}, fmt.Errorf("check %s: %w", path, ErrLocked)
	case err != nil:
		return Report{}, fmt.Errorf("check %s: %w (%w): %w", path, ErrInvalidFile, ErrDamaged, err)
	}
	var errs []error
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			// bbolt reports a page it could not read as a "panic: ..." it
			// recovered from: a damaged page, said so.
			if msg, ok := strings.CutPrefix(err.Error(), "panic: "); ok {
				err = fmt.Errorf("a page it cannot read (%s)", msg)
			}
			if errs = append(errs, err); len(errs) == 10 {
				break // the first ones say enough
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err = errors.Join(append(errs, err)...); err != nil {
		return Report{}, fmt.Errorf("check %s: %w (%w): bbolt's check: %w", path, ErrInvalidFile, ErrDamaged, err)
	}
	s, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		return Report{}, err
	}
	defer s.Close()
	return s.Verify()
}

// InChild checks a store file in another process, bounded in time: a
// FileCheck that whatever the file does to the checking process (a stack
// overflow, a fault, a loop) cannot do to this one.
type InChild struct {
	// Command makes the checking process for path, with
	// exec.CommandContext(ctx, ...) so that ctx's end kills it: a process
	// that runs CheckFile, exits with ChildExit's status and, when the file
	// is refused, says why on its last line of output.
	Command func(ctx context.Context, path string) *exec.Cmd
	// Bound is the time the process gets; 0 means a minute and a second
	// per 16 MiB of the file.
	Bound time.Duration
}

// Check runs the checking process on path: nil when it exits 0. One that
// exits otherwise, crashes or outlives its bound refuses the file with
// ErrDamaged (or ErrLocked, for a file another process holds).
func (c InChild) Check(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	bound := c.Bound
	if bound <= 0 {
		bound = time.Minute + time.Duration(st.Size()>>24)*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := c.Command(ctx, path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%w): %s: its check did not finish within %s (a page tree bbolt loops in)", ErrInvalidFile, ErrDamaged, path, bound)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	why := childReason(out.String(), path)
	if exit.ExitCode() == childLocked {
		return fmt.Errorf("%w: %s", ErrLocked, why)
	}
	return fmt.Errorf("%w (%w): %s: %s", ErrInvalidFile, ErrDamaged, path, why)
}

// childLocked is the exit status of a check that found the file locked by
// another process (not damage).
const childLocked = 3

// ChildExit is the exit status a check's process ends with for err, the
// error of CheckFile.
func ChildExit(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrLocked):
		return childLocked
	}
	return 1
}

// childReason is what a check's process said of the file at path: its last
// line, without the words this process adds again (the file's name, that
// it is damaged), or, for a crash, the runtime's first line (a stack
// overflow, a fault).
func childReason(out, path string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "runtime: goroutine stack exceeds") || strings.HasPrefix(l, "unexpected fault") {
			return "its check crashed: " + strings.TrimSpace(l)
		}
	}
	last := strings.TrimSpace(lines[len(lines)-1])
	if _, rest, ok := strings.Cut(last, ": "); ok && strings.HasPrefix(last, "server ") {
		last = rest // the command's name
	}
	for _, again := range []string{"check " + path + ": ", fmt.Sprintf("%v (%v): ", ErrInvalidFile, ErrDamaged), path + ": ", errDamagedData.Error() + ": "} {
		last = strings.ReplaceAll(last, again, "")
	}
	if len(last) > 400 {
		last = last[:400] + "…"
	}
	if last == "" {
		return "its check failed without a word"
	}
	return last
}
