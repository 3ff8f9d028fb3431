package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

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
//
// The rows are read by up to four goroutines, each taking some agencies'
// batches in a read transaction of its own at the same state (alone when
// the store changed meanwhile): on a machine of several cores the draw
// costs about what reading the file does.
func (s *Store) Verify() (Report, error) {
	var rep Report
	err := s.view(func(tx *bolt.Tx) error {
		rows, batches, err := s.readRows(tx, min(runtime.GOMAXPROCS(0), 4))
		if err != nil {
			return err
		}
		rep, err = holdTo(tx, s.format, rows)
		rep.Batches = batches
		return err
	})
	return rep, err
}

// errMoved means a reader's transaction is not at the state of the others.
var errMoved = errors.New("the store changed between the readers' transactions")

// readRows reads the rows of every agency in parts goroutines, the k-th
// taking the agencies a with a%parts == k; it returns each agency's rows
// and how many batches there are.
func (s *Store) readRows(tx *bolt.Tx, parts int) (map[int]*agencyRows, int, error) {
	type part struct {
		rows    map[int]*agencyRows
		batches int
		err     error
	}
	own := func(k int) func(int) bool {
		if parts == 1 {
			return nil
		}
		return func(a int) bool { return a%parts == k }
	}
	out := make([]part, parts)
	var wg sync.WaitGroup
	for k := 1; k < parts; k++ {
		wg.Go(func() {
			out[k].err = s.view(func(t *bolt.Tx) error {
				if t.ID() != tx.ID() {
					return errMoved
				}
				var err error
				out[k].rows, out[k].batches, err = rowsOf(t, own(k))
				return err
			})
		})
	}
	out[0].rows, out[0].batches, out[0].err = rowsOf(tx, own(0))
	wg.Wait()
	all, batches := map[int]*agencyRows{}, 0
	for _, p := range out {
		if errors.Is(p.err, errMoved) {
			return rowsOf(tx, nil)
		}
		if p.err != nil {
			return nil, 0, p.err
		}
		maps.Copy(all, p.rows)
		batches += p.batches
	}
	return all, batches, nil
}

// agencyRows is what Verify computes of an agency's rows.
type agencyRows struct {
	count   uint64
	digest  *lottery.Digest
	winners []string
}

// rowsOf reads the rows of the batches of the agencies own takes (nil:
// all): each agency's count, digest and winners, and how many batches.
func rowsOf(tx *bolt.Tx, own func(agency int) bool) (map[int]*agencyRows, int, error) {
	seen, batches := map[int]*agencyRows{}, 0
	// A batch's rows are encoded for the digest one after the other and
	// hashed with one write: the digest of the same bets, added one by one.
	enc := make([]byte, 0, 32<<10)
	err := batchesOf(tx, own, func(b *batch) error {
		batches++
		a := seen[b.agency]
		if a == nil {
			a = &agencyRows{digest: lottery.NewDigest()}
			seen[b.agency] = a
		}
		enc = enc[:0]
		err := b.eachRow(func(seq uint64, row []byte) error {
			var f rowFields
			if f.split(row) {
				enc = lottery.AppendFieldsEncoding(enc, f.number, f.birth, f.document, f.first, f.last)
				if f.number == lottery.WinnerNumber {
					a.winners = append(a.winners, string(f.document))
				}
			} else {
				bet, err := ParseRow(string(row))
				if err != nil {
					return badRow(seq, err)
				}
				enc = lottery.AppendEncoding(enc, &bet)
				if lottery.HasWon(bet) {
					a.winners = append(a.winners, bet.Document)
				}
			}
			a.count++
			return nil
		})
		a.digest.AddEncoded(enc)
		return err
	})
	return seen, batches, err
}

// holdTo holds the store of tx to the agencies' rows: their counts,
// finishes, digests and, once drawn, winners.
func holdTo(tx *bolt.Tx, format string, seen map[int]*agencyRows) (Report, error) {
	rep := Report{Format: format, Winners: map[int][]string{}, Bets: tx.Bucket(bucketBets).Sequence()}
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
	err := tx.Bucket(bucketWinners).ForEach(func(k, v []byte) error {
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

// rowFields are a stored row's fields, its strings in the row.
type rowFields struct {
	first, last, document []byte
	birth                 lottery.Date
	number                int
}

// split reads row, of the fields as AppendRow writes them, without a parse
// of its own (it was validated when it was stored, and is held to its
// checksum); false for any other row (a quoted field, say): ParseRow's. A
// row without quotes has exactly five commas (AppendRow quotes a field with
// one): the first name ends at the first after the agency, the number,
// date and document are read from the end.
func (f *rowFields) split(row []byte) bool {
	if bytes.IndexByte(row, '"') >= 0 {
		return false
	}
	c0 := bytes.IndexByte(row, ',')
	c4 := bytes.LastIndexByte(row, ',')
	c3 := c4 - 11 // a date is 10 bytes
	if c0 < 0 || c3 <= c0 || row[c3] != ',' {
		return false
	}
	c1 := c0 + 1 + bytes.IndexByte(row[c0+1:c3], ',')
	c2 := bytes.LastIndexByte(row[:c3], ',')
	if c1 <= c0 || c2 <= c1 || c2+1 == c3 {
		return false
	}
	number, ok1 := atoiBytes(row[c4+1:])
	birth, ok2 := scanDate(row[c3+1 : c4])
	if !ok1 || !ok2 || number > lottery.MaxNumber {
		return false
	}
	f.first, f.last, f.document = row[c0+1:c1], row[c1+1:c2], row[c2+1:c3]
	f.birth, f.number = birth, number
	return true
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
