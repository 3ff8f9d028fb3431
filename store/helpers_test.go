package store_test

import (
	"iter"
	"time"

	"github.com/loteria-nacional/tp0/lottery"
)

func timeNow() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func seq(bets []lottery.Bet) iter.Seq2[lottery.Bet, error] {
	return func(yield func(lottery.Bet, error) bool) {
		for _, b := range bets {
			if !yield(b, nil) {
				return
			}
		}
	}
}
