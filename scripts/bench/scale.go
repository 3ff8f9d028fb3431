package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// scale runs generated data of 100k, 1M and 5M bets over 1, 10 and 100
// agencies and prints a Markdown table.
func (b *bench) scale(runs int) error {
	tmp, err := os.MkdirTemp("", "tp0-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Println("| agencies | bets | time | bets/s | central peak RSS | central peak anon | draw | store file |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, total := range []int{100_000, 1_000_000, 5_000_000} {
		for _, n := range []int{1, 10, 100} {
			dir := filepath.Join(tmp, fmt.Sprintf("d%d-%d", n, total))
			if err := generate(dir, n, total); err != nil {
				return err
			}
			d, err := scanData(dir, "generated")
			if err != nil {
				return err
			}
			var rs []result
			for range max(1, runs) {
				r, err := b.runOurs(d, tmp, "")
				if err != nil {
					return err
				}
				rs = append(rs, r)
			}
			w := summarize(rs, func(r result) time.Duration { return r.wall }).median
			draw := summarize(rs, func(r result) time.Duration { return r.draw }).median
			fmt.Printf("| %d | %d | %s | %.0f | %d MiB | %d MiB | %s | %d MiB |\n", n, total, ms(w), float64(total)/w.Seconds(),
				maxOf(rs, func(r result) int64 { return r.peakRSS })>>10, maxOf(rs, func(r result) int64 { return r.peakAnon })>>10,
				ms(draw), rs[0].dbSize>>20)
			os.RemoveAll(dir)
		}
	}
	return nil
}
