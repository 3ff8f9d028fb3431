package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	official "github.com/loteria-nacional/tp0/internal/dataset"
	"github.com/loteria-nacional/tp0/pki"
)

// dataset describes agency files and what a correct run must produce.
type dataset struct {
	dir      string
	agencies int
	bets     int
	winners  map[int]int
	label    string
}

// scanData counts bets and 7574s per agency file.
func scanData(dir, label string) (dataset, error) {
	d := dataset{dir: dir, winners: map[int]int{}, label: label}
	for i := 1; ; i++ {
		f, err := os.Open(filepath.Join(dir, fmt.Sprintf("agency-%d.csv", i)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return d, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			d.bets++
			if strings.HasSuffix(strings.TrimRight(sc.Text(), "\r"), ",7574") {
				d.winners[i]++
			}
		}
		f.Close()
		d.agencies = i
	}
	if d.agencies == 0 {
		return d, fmt.Errorf("no agency-N.csv in %s", dir)
	}
	return d, nil
}

// makePKI writes a CA, the central's pair and agencies 1..n's into dir.
func makePKI(dir string, n int) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	now := time.Now()
	spec := pki.Spec{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	ca, err := pki.NewCA("bench CA", spec)
	if err != nil {
		return "", err
	}
	pairs := map[string]func() (pki.Pair, error){
		"ca": func() (pki.Pair, error) { return ca, nil },
		"server": func() (pki.Pair, error) {
			return pki.NewServer(ca, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, spec)
		},
	}
	for i := 1; i <= n; i++ {
		pairs[fmt.Sprintf("agency-%d", i)] = func() (pki.Pair, error) { return pki.NewAgency(ca, i, spec) }
	}
	for name, mk := range pairs {
		p, err := mk()
		if err == nil {
			err = p.Write(dir, name)
		}
		if err != nil {
			return "", err
		}
	}
	return dir, nil
}

// defaultData extracts the official dataset when there is one (found as
// every program finds it: internal/dataset), else generates data of the
// same size; it prints which on its first line.
func defaultData(tmp string) (dir, label string, err error) {
	dir = filepath.Join(tmp, "data")
	zip, from, err := official.Find()
	fmt.Println(official.Describe(zip, from, err))
	switch {
	case err == nil:
		out, err := exec.Command("go", "run", "./scripts/gendata", "-out", dir, "-zip", zip).CombinedOutput()
		if err != nil {
			return "", "", fmt.Errorf("extract dataset: %v\n%s", err, out)
		}
		return dir, "official dataset", nil
	case !errors.Is(err, official.ErrNotFound):
		return "", "", err
	}
	return dir, "generated data, official size", generate(dir, 5, 78697)
}

func generate(dir string, agencies, bets int) error {
	out, err := exec.Command("go", "run", "./scripts/gendata", "-out", dir, "-agencies", strconv.Itoa(agencies),
		"-bets", strconv.Itoa(bets)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gendata: %v\n%s", err, out)
	}
	return nil
}
