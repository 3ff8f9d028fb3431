// Command gendata writes deterministic agency CSV files shaped like the
// course's dataset: first name, last name, document, birthdate, number, CRLF
// line ends, no header. Names carry accents and apostrophes, some documents
// repeat, and about one bet in 8,000 plays the winning number 7574.
//
//	go run ./scripts/gendata -out .data -agencies 5 -bets 78697 [-seed 1]
//	go run ./scripts/gendata -out .data -zip .data/dataset.zip
//	go run ./scripts/gendata -find
//
// With -zip it extracts the agency-N.csv files of the course's dataset.zip
// instead (no unzip tool needed). -find prints the path of the course's
// dataset as every program looks for it (internal/dataset: TP0_DATASET,
// .data/dataset.zip, .data/datasets.zip, ../shared/tp0-dataset/dataset.zip),
// or nothing when there is none.
//
// Bets are split between agencies in decreasing shares, as in the course's
// files. The same flags always give the same bytes.
package main

import (
	"archive/zip"
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/loteria-nacional/tp0/internal/dataset"
)

var (
	firstNames = []string{"Santiago", "Lionel", "Agustín", "Emanuel", "Tiago", "Nicolás", "Camila", "Rocío",
		"Diego", "Milagros", "Celeste", "Ezequiel", "María", "José", "Lucía", "Tomàs", "Joaquín", "Valentina",
		"Martina", "Sofía", "Matías", "Julián", "Florencia", "Ramón", "Inés", "Ñancul", "Belén", "Andrés"}
	lastNames = []string{"Lorca", "Zambrano", "Rivera", "Varela", "Mamani", "D'Elia", "Álvarez", "González",
		"Pérez", "Fernández", "López", "Martínez", "Gómez", "O'Connor", "Domínguez", "Sáenz", "Peña", "Ibáñez",
		"Rodríguez", "Di María", "Acuña", "Muñoz", "Quiñones", "Sosa", "Romero", "D'Alessandro"}
)

func main() {
	out := flag.String("out", ".data", "folder for agency-N.csv files")
	agencies := flag.Int("agencies", 5, "number of agencies")
	bets := flag.Int("bets", 78697, "total bets over all agencies")
	seed := flag.Uint64("seed", 1, "random seed")
	zipPath := flag.String("zip", "", "extract agency-N.csv files from this zip instead of generating")
	keep := flag.Bool("keep", false, "keep agency files that already exist; write only the missing ones")
	find := flag.Bool("find", false, "print the course's dataset's path (nothing when there is none) and exit")
	flag.Parse()
	if *find {
		path, _, err := dataset.Find()
		if err != nil && !errors.Is(err, dataset.ErrNotFound) {
			fmt.Fprintln(os.Stderr, "gendata:", err)
			os.Exit(1)
		}
		if path != "" {
			fmt.Println(path)
		}
		return
	}
	if *zipPath != "" {
		if err := extract(*zipPath, *out); err != nil {
			fmt.Fprintln(os.Stderr, "gendata:", err)
			os.Exit(1)
		}
		return
	}
	if *agencies < 1 || *bets < 0 {
		fmt.Fprintln(os.Stderr, "gendata: -agencies must be at least 1 and -bets not negative")
		os.Exit(2)
	}
	if err := generate(*out, *agencies, *bets, *seed, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "gendata:", err)
		os.Exit(1)
	}
}

// shares splits total over n agencies in decreasing parts (weights n, n-1, ..., 1).
func shares(total, n int) []int {
	w := n * (n + 1) / 2
	out := make([]int, n)
	left := total
	for i := range out {
		out[i] = total * (n - i) / w
		left -= out[i]
	}
	out[0] += left
	return out
}

func generate(dir string, agencies, total int, seed uint64, keep bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0x7574))
	var docs []string // some players bet more than once
	for i, n := range shares(total, agencies) {
		path := filepath.Join(dir, fmt.Sprintf("agency-%d.csv", i+1))
		if _, err := os.Stat(path); keep && err == nil {
			continue
		}
		if err := writeAgency(path, n, rng, &docs); err != nil {
			return err
		}
	}
	return nil
}

func writeAgency(path string, n int, rng *rand.Rand, docs *[]string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	var row []byte
	for range n {
		doc := strconv.Itoa(20_000_000 + rng.IntN(25_000_000))
		if len(*docs) > 0 && rng.IntN(500) == 0 {
			doc = (*docs)[rng.IntN(len(*docs))]
		} else if len(*docs) < 1<<16 {
			*docs = append(*docs, doc)
		}
		number := rng.IntN(10000)
		if rng.IntN(8000) == 0 {
			number = 7574
		}
		first := firstNames[rng.IntN(len(firstNames))]
		if rng.IntN(2) == 0 {
			first += " " + firstNames[rng.IntN(len(firstNames))]
		}
		row = append(row[:0], first...)
		row = append(append(row, ','), lastNames[rng.IntN(len(lastNames))]...)
		row = append(append(row, ','), doc...)
		row = fmt.Appendf(row, ",%04d-%02d-%02d,%d\r\n", 1950+rng.IntN(55), 1+rng.IntN(12), 1+rng.IntN(28), number)
		if _, err := w.Write(row); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

var agencyFile = regexp.MustCompile(`^agency-[0-9]+\.csv$`)

// extract copies the agency-N.csv files of the zip at zipPath into dir.
func extract(zipPath, dir string) error {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer z.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	found := 0
	for _, f := range z.File {
		name := filepath.Base(f.Name)
		if !agencyFile.MatchString(name) {
			continue
		}
		if err := extractOne(f, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		found++
	}
	if found == 0 {
		return fmt.Errorf("%s has no agency-N.csv file", zipPath)
	}
	return nil
}

func extractOne(f *zip.File, path string) error {
	r, err := f.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	tmp := path + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
