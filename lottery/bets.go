package lottery

// Bets is a sequence of bets read in order: a slice (BetSlice), or a batch
// as it came off the wire, decoded one bet at a time so that it is held as
// its bytes while it waits to be stored.
type Bets interface {
	// Len is the number of bets.
	Len() int
	// Each calls fn with each bet in order, i its index. The bet is valid
	// only during the call (copy it, or what it points to, to keep it).
	// Each stops at fn's first error and returns it.
	Each(fn func(i int, bet *Bet) error) error
}

// BetSlice is a slice of bets as Bets.
type BetSlice []Bet

// Len is the number of bets.
func (s BetSlice) Len() int { return len(s) }

// Each calls fn with each bet in order.
func (s BetSlice) Each(fn func(i int, bet *Bet) error) error {
	for i := range s {
		if err := fn(i, &s[i]); err != nil {
			return err
		}
	}
	return nil
}
