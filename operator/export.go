package operator

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

const exportUsage = `usage: server export --db PATH [--csv FILE] [--winners FILE] [--round FILE] [--check]

Reads a store file, read-only (a central may not be running on it: the
command says so within a few seconds instead of waiting), and writes:
  --csv FILE      every bet as the course's bets.csv: exactly the rows that
                  Python's csv writer writes and load_bets reads ("-": stdout)
  --winners FILE  each agency's winners, once the draw ran: CSV rows
                  agency,document (a header first), or JSON {"agency": [documents]}
                  when FILE ends in .json ("-": stdout, CSV)
  --round FILE    the drawn round's signed record, as the central wrote it
                  (server verify-round checks it; "-": stdout)
  --check         the whole file checked (bbolt's check of its pages, every
                  batch held to its checksum, every agency's count, finish,
                  digest and winners to its rows), and a summary
Before anything, the file is checked in a process of its own, bounded in
time: a damaged file is refused, whatever it does to that process.
`

// Export runs `server export`.
func Export(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("export")
	db := fs.String("db", "", "the store file")
	csvPath := fs.String("csv", "", "bets.csv to write")
	winnersPath := fs.String("winners", "", "winners file to write")
	roundPath := fs.String("round", "", "the round's record to write")
	check := fs.Bool("check", false, "check the whole file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, exportUsage)
			return 0
		}
		fmt.Fprintf(stderr, "server export: %v\n\n%s", err, exportUsage)
		return 2
	}
	if *db == "" || fs.NArg() > 0 || *csvPath == "" && *winnersPath == "" && *roundPath == "" && !*check {
		fmt.Fprintf(stderr, "server export: --db and at least one of --csv, --winners, --round, --check are needed\n\n%s", exportUsage)
		return 2
	}
	if err := runExport(*db, *csvPath, *winnersPath, *roundPath, *check, stdout); err != nil {
		fmt.Fprintf(stderr, "server export: %v\n", err)
		if errors.Is(err, store.ErrInvalidFile) {
			fmt.Fprintf(stderr, "hint: %s\n", store.Hint)
		}
		return 1
	}
	return 0
}

func runExport(db, csvPath, winnersPath, roundPath string, check bool, stdout io.Writer) error {
	s, err := openChecked(db)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Round()
	if err != nil {
		return err
	}
	if check {
		rep, err := s.Verify()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %s; round of %s, %d bets, %d agencies finished, drawn: %t\n",
			db, describe(rep), r.Started.UTC().Format(time.RFC3339), r.Bets, len(r.Finished), r.Drawn)
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
	if roundPath != "" {
		rec, err := s.Record()
		if err != nil {
			return err
		}
		if len(rec) == 0 {
			return fmt.Errorf("the round in %s has no record: it is not drawn (%t), or the store is a follower's that never led since the draw (export the leader's)", db, r.Drawn)
		}
		if err := writeOut(roundPath, stdout, func(w io.Writer) error { _, err := w.Write(rec); return err }); err != nil {
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
