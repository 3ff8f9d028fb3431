package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// The streaming reads of the bets bucket (LoadBets, ScanBets, ScanWinners,
// Export): one read transaction, a value per batch split into its rows.

// LoadBets yields every stored bet in registry order, streaming from one read
// transaction: memory does not grow with the number of bets. It is the
// course's load_bets.
func (s *Store) LoadBets() iter.Seq2[lottery.Bet, error] {
	return func(yield func(lottery.Bet, error) bool) {
		give := callerFunc(func(bet lottery.Bet) bool { return yield(bet, nil) })
		err := s.view(func(tx *bolt.Tx) error {
			return eachRow(tx, func(seq uint64, row []byte) error {
				bet, err := ParseRow(string(row)) // copies row out of the mmap
				if err != nil {
					return badRow(seq, err)
				}
				if !give(bet) {
					return errStop
				}
				return nil
			})
		})
		if err != nil && err != errStop {
			yield(lottery.Bet{}, err)
		}
	}
}

var errStop = errors.New("stop")

// ScanBets calls fn for every stored bet in registry order, from one read
// transaction, without allocating: the bet's strings point into the store's
// memory map and are valid only until fn returns (copy what you keep, e.g.
// with strings.Clone). LoadBets is the copying form.
func (s *Store) ScanBets(fn func(*lottery.Bet) error) error {
	return s.view(func(tx *bolt.Tx) error {
		return scanTx(tx, nil, callerFunc(fn))
	})
}

// ScanWinners is ScanBets for the bets that lottery.HasWon, the draw's
// scan; it returns how many bets it went over. A row whose number field
// rules it out (cannotWin) is not parsed: the scan costs little more than
// reading the file.
func (s *Store) ScanWinners(fn func(*lottery.Bet) error) (scanned uint64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		scanned, err = winnersTx(tx, callerFunc(fn))
		return err
	})
	return scanned, err
}

// winnersTx is ScanWinners inside tx.
func winnersTx(tx *bolt.Tx, fn func(*lottery.Bet) error) (scanned uint64, err error) {
	err = scanTx(tx, &scanned, func(bet *lottery.Bet) error {
		if !lottery.HasWon(*bet) {
			return nil
		}
		return fn(bet)
	})
	return scanned, err
}

// scanTx calls fn for every stored bet of tx in registry order, the bet's
// strings pointing into the memory map. With winners set, it counts the
// rows into it and skips, unparsed, the bets that cannot win (a damaged
// row among them goes unnoticed by the draw; LoadBets and export parse
// every row).
func scanTx(tx *bolt.Tx, winners *uint64, fn func(*lottery.Bet) error) error {
	bet := new(lottery.Bet) // one for the scan: fn may keep no pointer to it
	return eachRow(tx, func(seq uint64, row []byte) error {
		if winners != nil {
			if *winners++; cannotWin(row) {
				return nil
			}
		}
		var err error
		if *bet, err = ParseRow(unsafe.String(&row[0], len(row))); err != nil {
			return badRow(seq, err)
		}
		return fn(bet)
	})
}

var newline = []byte{'\n'}

// badRow is the error of a stored row that does not parse: the file is
// damaged (Store.safe says so, naming it).
func badRow(seq uint64, err error) error {
	return fmt.Errorf("%w: bucket %s bet %0*d: %w", errDamagedData, bucketBets, keyLen, seq, err)
}

// parseKey reads a key of the bets bucket.
func parseKey(k []byte) (uint64, bool) {
	if len(k) != keyLen {
		return 0, false
	}
	var n uint64
	for _, c := range k {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// cannotWin reports, from its last field alone, that row's bet does not win:
// the number is plain decimal digits and not lottery.WinnerNumber. Any
// other row (the winning number, or a field to judge) is parsed whole, so
// the draw sees exactly the bets ParseRow and HasWon would pick.
func cannotWin(row []byte) bool {
	i := bytes.LastIndexByte(row, ',')
	digits := row[i+1:]
	if i < 0 || len(digits) == 0 || len(digits) > 9 {
		return false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n != lottery.WinnerNumber
}

// Export writes every stored bet to w as the course's bets.csv.
func (s *Store) Export(w io.Writer) error {
	return WriteCSV(w, s.LoadBets())
}
