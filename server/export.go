package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loteria-nacional/tp0/store"
)

const exportUsage = `usage: server export --db PATH [--csv FILE] [--winners FILE] [--check]

Reads a store file, read-only (a central may not be running on it: the
command says so within a few seconds instead of waiting), and writes:
  --csv FILE      every bet as the course's bets.csv: exactly the rows that
                  Python's csv writer writes and load_bets reads ("-": stdout)
  --winners FILE  each agency's winners, once the draw ran: CSV rows
                  agency,document (a header first), or JSON {"agency": [documents]}
                  when FILE ends in .json ("-": stdout, CSV)
  --check         bbolt's consistency check of the whole file, and a summary
`

// lockWait bounds the wait for a store a central holds.
const lockWait = 3 * time.Second

// export runs `server export`; it returns the exit code (2 for bad usage).
func export(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", "", "the store file")
	csvPath := fs.String("csv", "", "bets.csv to write")
	winnersPath := fs.String("winners", "", "winners file to write")
	check := fs.Bool("check", false, "run bbolt's check")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, exportUsage)
			return 0
		}
		fmt.Fprintf(stderr, "server export: %v\n\n%s", err, exportUsage)
		return 2
	}
	if *db == "" || fs.NArg() > 0 || *csvPath == "" && *winnersPath == "" && !*check {
		fmt.Fprintf(stderr, "server export: --db and at least one of --csv, --winners, --check are needed\n\n%s", exportUsage)
		return 2
	}
	if err := runExport(*db, *csvPath, *winnersPath, *check, stdout); err != nil {
		fmt.Fprintf(stderr, "server export: %v\n", err)
		if errors.Is(err, store.ErrInvalidFile) {
			fmt.Fprintf(stderr, "hint: %s\n", store.Hint)
		}
		return 1
	}
	return 0
}

func runExport(db, csvPath, winnersPath string, check bool, stdout io.Writer) error {
	s, err := store.Open(db, store.Options{ReadOnly: true, LockTimeout: lockWait})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w: a central is running on %s (it holds the file's lock); stop it, or copy the file and export the copy", err, db)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Round()
	if err != nil {
		return err
	}
	if check {
		if err := s.Check(); err != nil {
			return fmt.Errorf("bbolt check of %s: %w", db, err)
		}
		fmt.Fprintf(stdout, "%s: ok (bbolt check); round of %s, %d bets, %d agencies finished, drawn: %t\n",
			db, r.Started.UTC().Format(time.RFC3339), r.Bets, len(r.Finished), r.Drawn)
	}
	if csvPath != "" {
		if err := writeOut(csvPath, stdout, s.Export); err != nil {
			return err
		}
	}
	if winnersPath != "" {
		if !r.Drawn {
			return fmt.Errorf("the round in %s has not been drawn: no winners yet (%d of its agencies finished)", db, len(r.Finished))
		}
		write := func(w io.Writer) error { return writeWinnersCSV(w, r.Winners) }
		if strings.EqualFold(filepath.Ext(winnersPath), ".json") {
			write = func(w io.Writer) error { return writeWinnersJSON(w, r.Winners) }
		}
		if err := writeOut(winnersPath, stdout, write); err != nil {
			return err
		}
	}
	return nil
}

// writeOut writes through write to path ("-": stdout), whole or not at all.
func writeOut(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	werr := write(f)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func writeWinnersCSV(w io.Writer, winners map[int][]string) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"agency", "document"})
	for _, a := range slices.Sorted(maps.Keys(winners)) {
		for _, doc := range winners[a] {
			cw.Write([]string{strconv.Itoa(a), doc})
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeWinnersJSON(w io.Writer, winners map[int][]string) error {
	out := make(map[string][]string, len(winners))
	for a, docs := range winners {
		if docs == nil {
			docs = []string{}
		}
		out[strconv.Itoa(a)] = docs
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
