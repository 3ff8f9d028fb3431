// Package dataset finds the course's official dataset (the zip of
// agency-N.csv files) the one way every program, test and bench of the
// project looks for it:
//
//  1. TP0_DATASET, an explicit path (it must exist);
//  2. .data/dataset.zip, then .data/datasets.zip (the name the statement
//     uses), in the project's root;
//  3. ../shared/tp0-dataset/dataset.zip beside the project's root (the
//     course's machines).
//
// Nothing found is not an error: callers generate data of the same shape,
// and say so.
package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Env is the variable that names the dataset explicitly.
const Env = "TP0_DATASET"

// ErrNotFound means no dataset is in any of the places looked at.
var ErrNotFound = errors.New("the course's dataset is not in TP0_DATASET, .data/dataset.zip, .data/datasets.zip nor ../shared/tp0-dataset/dataset.zip")

// Candidates are the places looked at, relative to the project's root,
// after TP0_DATASET.
var Candidates = []string{
	filepath.Join(".data", "dataset.zip"),
	filepath.Join(".data", "datasets.zip"),
	filepath.Join("..", "shared", "tp0-dataset", "dataset.zip"),
}

// Find returns the dataset's path (absolute) and where it was found ("TP0_DATASET"
// or the candidate's relative path). It returns ErrNotFound when there is
// none, and an error when TP0_DATASET names a file that cannot be read.
func Find() (path, from string, err error) {
	if p := os.Getenv(Env); p != "" {
		abs, err := filepath.Abs(p)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return "", "", fmt.Errorf("%s=%s: %w", Env, p, err)
		}
		return abs, Env, nil
	}
	root, err := Root()
	if err != nil {
		return "", "", err
	}
	for _, c := range Candidates {
		p := filepath.Join(root, c)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, c, nil
		}
	}
	return "", "", ErrNotFound
}

// Root returns the project's root: the nearest folder, from the working
// directory up, that holds the project's go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && isProject(b) {
			return dir, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no project root (go.mod of %s) above the working directory", module)
		}
		dir = parent
	}
}

const module = "github.com/loteria-nacional/tp0"

func isProject(gomod []byte) bool {
	want := "module " + module + "\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}

// Describe is the one line a run starts with: which dataset it uses, or
// that it generates data (err from Find).
func Describe(path, from string, err error) string {
	switch {
	case err == nil:
		return fmt.Sprintf("dataset: the course's %s (from %s)", path, from)
	case errors.Is(err, ErrNotFound):
		return "dataset: none found (" + Env + ", .data/dataset.zip, .data/datasets.zip, ../shared/tp0-dataset/dataset.zip): generated data of the same shape"
	default:
		return "dataset: " + err.Error()
	}
}
