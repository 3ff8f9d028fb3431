package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/lottery"
)

// Report is what Verify read of a sound store.
type Report struct {
	// Format is the file's format: formatSums, or formatRows for a file
	// written before checksum records and opened read-only (its rows are
	// held to the digests alone).
	Format  string
	Bets    uint64
	Batches int
	// Agencies had bets stored; Digests of them had a digest to hold their
	// rows to (a store from before digests has none).
	Agencies, Digests int
	// Winners is the draw over the rows: each agency's winners' documents,
	// in registry order (agencies with bets and no winner have none).
	Winners map[int][]string
}

// Checksummed reports whether every batch was held to a checksum record.
func (r Report) Checksummed() bool { return r.Format == formatSums }

// Verify reads every stored batch, in one read transaction, and holds the
// store to itself: each batch to its checksum record, each agency's
// committed count, finish and digest to its rows (lottery.Digest computed
// again over them), and, once drawn, each agency's stored winners to the
// draw over the rows. A difference is ErrDamaged naming what differs (the
// batch, or the agency). It is what `server export --check` and a file's
// check run, and one central's draw, whose winners it returns.
func (s *Store) Verify() (Report, error) {
	rep := Report{Format: s.format}
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		rep, err = verifyTx(tx, s.format)
		return err
	})
	return rep, err
}

// agencyRows is what Verify computes of an agency's rows.
type agencyRows struct {
	count   uint64
	digest  *lottery.Digest
	winners []string
}

func verifyTx(tx *bolt.Tx, format string) (Report, error) {
	rep := Report{Format: format, Winners: map[int][]string{}}
	seen := map[int]*agencyRows{}
	var bet lottery.Bet
	err := eachBatch(tx, func(b *batch) error {
		rep.Batches++
		a := seen[b.agency]
		if a == nil {
			a = &agencyRows{digest: lottery.NewDigest()}
			seen[b.agency] = a
		}
		return b.eachRow(func(seq uint64, row []byte) error {
			if err := scanRow(row, &bet); err != nil {
				return badRow(seq, err)
			}
			a.count++
			a.digest.Add(&bet)
			if lottery.HasWon(bet) {
				a.winners = append(a.winners, strings.Clone(bet.Document))
			}
			return nil
		})
	})
	if err != nil {
		return rep, err
	}
	rep.Bets = tx.Bucket(bucketBets).Sequence()
	// Every agency with a count, a finish or a digest, and every one with rows.
	agencies := maps.Clone(seen)
	for _, name := range [][]byte{bucketAgencies, bucketFinished, bucketDigests} {
		err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
			id, ok := atoiBytes(k)
			if !ok || len(k) != 6 {
				return fmt.Errorf("%w: bucket %s key %q is not an agency id", errDamagedData, name, k)
			}
			if agencies[id] == nil {
				agencies[id] = &agencyRows{digest: lottery.NewDigest()}
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(agencies)) {
		a, key := agencies[id], agencyKey(id)
		committed, err := getUint(tx.Bucket(bucketAgencies), bucketAgencies, key)
		if err != nil {
			return rep, err
		}
		if committed != a.count {
			return rep, agencyDamaged(id, "%d bets committed, its rows hold %d", committed, a.count)
		}
		if v := tx.Bucket(bucketFinished).Get(key); v != nil {
			total, err := parseUint(bucketFinished, key, v)
			if err != nil {
				return rep, err
			}
			if total != a.count {
				return rep, agencyDamaged(id, "it finished with %d bets, its rows hold %d", total, a.count)
			}
		}
		d, err := loadDigest(tx, key, committed)
		if err != nil {
			return rep, err
		}
		if d != nil && a.count > 0 {
			if d.Sum() != a.digest.Sum() {
				return rep, agencyDamaged(id, "its digest is not that of its rows (a stored row, or the digest, changed)")
			}
			rep.Digests++
		}
		if a.count > 0 {
			rep.Agencies++
			rep.Winners[id] = a.winners
		}
	}
	if tx.Bucket(bucketMeta).Get(keyDrawTime) == nil {
		return rep, nil
	}
	err = tx.Bucket(bucketWinners).ForEach(func(k, v []byte) error {
		id, ok := atoiBytes(k)
		if !ok {
			return fmt.Errorf("%w: bucket %s key %q is not an agency id", errDamagedData, bucketWinners, k)
		}
		if stored, drawn := splitDocs(string(v)), rep.Winners[id]; !slices.Equal(stored, drawn) && len(stored)+len(drawn) > 0 {
			return agencyDamaged(id, "its stored winners (%d) are not the draw over its rows (%d)", len(stored), len(drawn))
		}
		return nil
	})
	return rep, err
}

func agencyDamaged(agency int, format string, args ...any) error {
	return fmt.Errorf("%w: agency %d: %s", errDamagedData, agency, fmt.Sprintf(format, args...))
}

// scanRow reads a stored row into bet, its strings pointing into row (valid
// as long as row is): a row of the fields as AppendRow writes them, which
// was validated when it was stored and is held to its checksum, is split
// and its date and number read without a parse of their own; anything else
// (a quoted field) goes through ParseRow.
func scanRow(row []byte, bet *lottery.Bet) error {
	var f [6][]byte
	rest := row
	for i := range 5 {
		j := bytes.IndexByte(rest, ',')
		if j < 0 || bytes.IndexByte(rest[:j], '"') >= 0 {
			return slowRow(row, bet)
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	f[5] = rest
	agency, ok1 := atoiBytes(f[0])
	number, ok2 := atoiBytes(f[5])
	date, ok3 := scanDate(f[4])
	if !ok1 || !ok2 || !ok3 || number > lottery.MaxNumber || bytes.IndexByte(rest, ',') >= 0 || bytes.IndexByte(rest, '"') >= 0 || len(f[3]) == 0 {
		return slowRow(row, bet)
	}
	str := func(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
	*bet = lottery.Bet{Agency: agency, FirstName: str(f[1]), LastName: str(f[2]), Document: str(f[3]), Birthdate: date, Number: number}
	return nil
}

func slowRow(row []byte, bet *lottery.Bet) error {
	var err error
	*bet, err = ParseRow(string(row))
	return err
}

// scanDate reads YYYY-MM-DD with a month and day in range.
func scanDate(b []byte) (lottery.Date, bool) {
	if len(b) != 10 || b[4] != '-' || b[7] != '-' {
		return lottery.Date{}, false
	}
	y, ok1 := atoiBytes(b[:4])
	m, ok2 := atoiBytes(b[5:7])
	d, ok3 := atoiBytes(b[8:])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > 31 {
		return lottery.Date{}, false
	}
	return lottery.Date{Year: y, Month: time.Month(m), Day: d}, true
}
