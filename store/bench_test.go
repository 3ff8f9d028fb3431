package store_test

import (
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/loteria-nacional/tp0/lottery"
	"github.com/loteria-nacional/tp0/store"
)

// batchBets returns n typical bets of agency, as one 8 kB frame carries (~230).
func batchBets(agency, n int) []lottery.Bet {
	out := make([]lottery.Bet, n)
	for i := range out {
		out[i] = lottery.Bet{Agency: agency, FirstName: "Agustín Emanuel", LastName: "Zambrano",
			Document: strconv.Itoa(20000000 + i), Birthdate: lottery.Date{Year: 2000, Month: 5, Day: 10}, Number: i}
	}
	return out
}

const betsPerBatch = 230

// BenchmarkAppend stores one batch per op, fsync'd: the central's hot path.
func BenchmarkAppend(b *testing.B) {
	for _, v := range []struct {
		name string
		opts store.Options
	}{
		{"Default", store.Options{}},
		{"NoFreelistSync", store.Options{NoFreelistSync: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), v.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bets := batchBets(1, betsPerBatch)
			var first uint64
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Append(1, first, lottery.BetSlice(bets)); err != nil {
					b.Fatal(err)
				}
				first += betsPerBatch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*betsPerBatch), "ns/bet")
		})
	}
}

// BenchmarkAppendConcurrent has 5 agencies store batches at once (one op = one
// batch): separate commits (one db.Update each) against group commit.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, v := range []struct {
		name string
		opts store.Options
	}{
		{"Update", store.Options{}},
		{"GroupCommit", store.Options{GroupCommit: true}},
	} {
		b.Run(v.name, func(b *testing.B) {
			s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), v.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const agencies = 5
			per := b.N/agencies + 1
			b.ResetTimer()
			var wg sync.WaitGroup
			for a := 1; a <= agencies; a++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					bets := batchBets(a, betsPerBatch)
					for i := range per {
						if _, err := s.Append(a, uint64(i*betsPerBatch), lottery.BetSlice(bets)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// BenchmarkDrawScan scans a store of 1M bets of 5 agencies with HasWon:
// every bet parsed (LoadBets, ScanBets), every bet read and held to its
// digest (Verify, one central's draw) or only those that may win
// (ScanWinners, a replica's draw).
func BenchmarkDrawScan(b *testing.B) {
	const total, agencies = 1_000_000, 5
	s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < total; i += 10000 {
		a := 1 + i/10000%agencies
		if _, err := s.Append(a, uint64(i/agencies/10000*10000), lottery.BetSlice(batchBets(a, 10000))); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("LoadBets", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			won := 0
			for bet, err := range s.LoadBets() {
				if err != nil {
					b.Fatal(err)
				}
				if lottery.HasWon(bet) {
					won++
				}
			}
			if won != total/10000 {
				b.Fatalf("%d winners", won)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/bet")
	})
	// What a full bbolt consistency check of the same store costs (Open's
	// deep check of a begun round is this).
	b.Run("Check", func(b *testing.B) {
		for b.Loop() {
			if err := s.Check(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/bet")
	})
	b.Run("ScanBets", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			won := 0
			err := s.ScanBets(func(bet *lottery.Bet) error {
				if lottery.HasWon(*bet) {
					won++
				}
				return nil
			})
			if err != nil || won != total/10000 {
				b.Fatalf("%d winners, %v", won, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/bet")
	})
	// One central's draw: every batch held to its checksum, every row read
	// and each agency's digest computed again, the winners picked.
	b.Run("Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rep, err := s.Verify()
			if err != nil || len(rep.Winners[1]) != total/10000/agencies {
				b.Fatalf("%d winners, %v", len(rep.Winners[1]), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/bet")
	})
	// The draw's scan: only the rows whose number may win are parsed.
	b.Run("ScanWinners", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			won := 0
			_, err := s.ScanWinners(func(*lottery.Bet) error { won++; return nil })
			if err != nil || won != total/10000 {
				b.Fatalf("%d winners, %v", won, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/bet")
	})
}

// BenchmarkApply applies one replicated batch entry per op to a replica's
// store (no fsync: raft's log is the durable copy): a replica's hot path.
func BenchmarkApply(b *testing.B) {
	s, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{NoSync: true, NoFreelistSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Apply([]store.Entry{{Index: 1, Cmd: store.Command{Kind: store.CmdBegin, Agencies: 5, At: timeNow()}}}); err != nil {
		b.Fatal(err)
	}
	bets := batchBets(1, betsPerBatch)
	var first, index uint64 = 0, 1
	b.ReportAllocs()
	for b.Loop() {
		index++
		if _, err := s.Apply([]store.Entry{{Index: index, Cmd: store.Command{Kind: store.CmdAppend, Agency: 1, First: first, Bets: lottery.BetSlice(bets)}}}); err != nil {
			b.Fatal(err)
		}
		first += betsPerBatch
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*betsPerBatch), "ns/bet")
}
