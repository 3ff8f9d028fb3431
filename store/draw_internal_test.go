package store

import (
	"testing"

	"github.com/loteria-nacional/tp0/lottery"
)

// cannotWin never rules out a row whose parsed bet wins: the draw's skip
// picks exactly what ParseRow and HasWon would.
func FuzzCannotWin(f *testing.F) {
	for _, row := range []string{
		"1,Ana,Paz,123,1990-01-01,7574",
		"1,Ana,Paz,123,1990-01-01,07574",
		"1,Ana,Paz,123,1990-01-01,+7574",
		"1,Ana,Paz,123,1990-01-01, 7574",
		"1,Ana,Paz,123,1990-01-01,7575",
		"1,\"Ana, María\",Paz,123,1990-01-01,12",
		"1,Ana,Paz,123,1990-01-01,",
		"7574",
		"",
	} {
		f.Add(row)
	}
	f.Fuzz(func(t *testing.T, row string) {
		if !cannotWin([]byte(row)) {
			return
		}
		if bet, err := ParseRow(row); err == nil && lottery.HasWon(bet) {
			t.Fatalf("cannotWin(%q), yet the bet wins: %+v", row, bet)
		}
	})
}
