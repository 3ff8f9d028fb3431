package protocol

import (
	"bytes"
	"testing"

	"github.com/loteria-nacional/tp0/lottery"
)

// fullBatch returns a batch that fills one 8 kB frame with typical bets.
func fullBatch() *Batch {
	b := &Batch{Agency: 1}
	size := BatchOverhead
	for i := 0; ; i++ {
		bet := lottery.Bet{Agency: 1, FirstName: "Agustín Emanuel", LastName: "Zambrano", Document: "21689196",
			Birthdate: lottery.Date{Year: 2000, Month: 5, Day: 10}, Number: i % 10000}
		if size+BetSize(&bet) > MaxBatchFrame {
			return b
		}
		size += BetSize(&bet)
		b.Bets = append(b.Bets, bet)
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	batch := fullBatch()
	buf := make([]byte, 0, MaxBatchFrame)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(len(batch.Bets)), "bets/op")
}

func BenchmarkReadBatch(b *testing.B) {
	batch := fullBatch()
	frame, err := Append(nil, batch)
	if err != nil {
		b.Fatal(err)
	}
	src := bytes.NewReader(frame)
	r := NewReader(src, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(frame)
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(batch.Bets)), "bets/op")
}
