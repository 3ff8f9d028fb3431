package store

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Every batch of the bets bucket ends with its checksum record, a last
// line that no row can be (a row starts with its agency's number):
//
//	bets  000000000001  1,…,7574\n1,…,12\n…\n#1,230,9f3a01bc   (agency, rows, CRC-32C of key and rows, hex)
//
// bbolt checks its meta pages and nothing else, so a changed digit in a
// stored row would be read, exported and drawn as if an agency had sent it.
// Every read of the bets (scans, the draw, export, snapshots, backups) holds
// each batch to its record: the CRC (Castagnoli, as Kafka's record batches
// and raft-wal's frames) of its key and rows, its row count, and each row's
// agency. The key is in the CRC, so a batch moved under another key, or two
// swapped, fail it; the keys must follow one another (each batch's key is
// the previous one's plus its rows), so a batch removed fails too. The
// record shares its batch's value rather than a bucket of its own: a second
// bucket's pages, written at every commit, cost 10–14% of a store's writes
// (docs/performance.md). The bbolt CLI shows the rows as they are, the
// record last.

// sumMark starts a batch's checksum record, on the line after its rows.
const sumMark = '#'

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchSum is the CRC-32C of a batch's key and value.
func batchSum(key, value []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, value)
}

// appendSumRecord appends a batch's checksum record to b: its rows' line,
// then the record's.
func appendSumRecord(b []byte, agency, rows int, sum uint32) []byte {
	b = append(b, '\n', sumMark)
	b = strconv.AppendInt(b, int64(agency), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(rows), 10)
	b = append(b, ',')
	const hex = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hex[sum>>uint(shift)&0xf])
	}
	return b
}

// splitSumRecord returns a stored batch's rows and its checksum record
// (after its mark), or false when it has none.
func splitSumRecord(v []byte) (rows, rec []byte, ok bool) {
	i := bytes.LastIndexByte(v, '\n')
	if i < 0 || i+1 >= len(v) || v[i+1] != sumMark {
		return nil, nil, false
	}
	return v[:i], v[i+2:], true
}

// parseSumRecord reads a checksum record.
func parseSumRecord(v []byte) (agency, rows int, sum uint32, ok bool) {
	a, rest, ok1 := bytes.Cut(v, comma)
	r, s, ok2 := bytes.Cut(rest, comma)
	if !ok1 || !ok2 || len(s) != 8 {
		return 0, 0, 0, false
	}
	agency, ok1 = atoiBytes(a)
	rows, ok2 = atoiBytes(r)
	if !ok1 || !ok2 || agency < 1 || rows < 1 {
		return 0, 0, 0, false
	}
	for _, c := range s {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, 0, 0, false
		}
		sum = sum<<4 | uint32(d)
	}
	return agency, rows, sum, true
}

var comma = []byte{','}

// atoiBytes reads a decimal number of at most 18 digits.
func atoiBytes(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// batch is one value of the bets bucket as a read found it, held to its
// checksum record.
type batch struct {
	first  uint64 // the registry number of its first bet: its key
	agency int
	rows   int
	value  []byte // its rows, one per line (in the memory map), without its record
}

// last is the registry number of the batch's last bet.
func (b *batch) last() uint64 { return b.first + uint64(b.rows) - 1 }

// damaged is the error of a batch that fails its checks: the file's
// damage, naming the agency and the batch's first and last registry
// numbers (Store.safe adds the file).
func (b *batch) damaged(format string, args ...any) error {
	return fmt.Errorf("%w: batch %0*d..%0*d of agency %d: %s", errDamagedData, keyLen, b.first, keyLen, b.last(), b.agency, fmt.Sprintf(format, args...))
}

// eachBatch calls fn with every batch of tx in registry order, each held to
// its checksum record (a store from before the records, format 1, read
// only: to its rows alone). It checks that the keys follow one another and
// that they hold as many bets as the bucket counts; fn checks the rows
// (eachRow).
func eachBatch(tx *bolt.Tx, fn func(b *batch) error) error {
	return batchesOf(tx, nil, fn)
}

// batchesOf is eachBatch for the batches of the agencies own takes (nil:
// all): the others are only counted in their place.
func batchesOf(tx *bolt.Tx, own func(agency int) bool, fn func(b *batch) error) error {
	bets := tx.Bucket(bucketBets)
	summed := string(tx.Bucket(bucketMeta).Get(keyFormat)) != formatRows
	c := bets.Cursor()
	next := uint64(1)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		first, ok := parseKey(k)
		if !ok {
			return fmt.Errorf("%w: bucket %s key %q is not a bet's number", errDamagedData, bucketBets, k)
		}
		b := batch{first: first, value: v}
		if !summed {
			b.rows = bytes.Count(v, newline) + 1
			b.agency, _ = rowAgency(v)
		} else {
			rows, rec, ok := splitSumRecord(v)
			if !ok {
				return fmt.Errorf("%w: bucket %s key %s: the batch has no checksum record (a last line #agency,rows,crc32c)", errDamagedData, bucketBets, k)
			}
			var sum uint32
			if b.agency, b.rows, sum, ok = parseSumRecord(rec); !ok {
				return fmt.Errorf("%w: bucket %s key %s: %q is not a checksum record (#agency,rows,crc32c)", errDamagedData, bucketBets, k, rec)
			}
			if own != nil && !own(b.agency) {
				next = first + uint64(b.rows)
				continue
			}
			b.value = rows
			if got := batchSum(k, rows); got != sum {
				return b.damaged("its checksum is %08x, its rows' %08x: a stored byte changed", sum, got)
			}
		}
		if first != next {
			return b.damaged("it starts at bet %d, where bet %d was due (a batch is missing or out of place)", first, next)
		}
		if own != nil && !own(b.agency) {
			next = first + uint64(b.rows)
			continue
		}
		if err := fn(&b); err != nil {
			return err
		}
		next = first + uint64(b.rows)
	}
	if seq := bets.Sequence(); next-1 != seq {
		return fmt.Errorf("%w: bucket %s counts %d bets, its batches hold %d", errDamagedData, bucketBets, seq, next-1)
	}
	return nil
}

// rowAgency reads the agency of a row (its first field).
func rowAgency(row []byte) (int, bool) {
	i := bytes.IndexByte(row, ',')
	if i < 0 {
		return 0, false
	}
	return atoiBytes(row[:i])
}

// eachRow calls fn with every stored row of tx in registry order, read from
// the memory map, and its bet's registry number. Each batch is held to its
// checksum record (eachBatch) and its rows to the batch (batch.eachRow).
func eachRow(tx *bolt.Tx, fn func(seq uint64, row []byte) error) error {
	return eachBatch(tx, func(b *batch) error { return b.eachRow(fn) })
}

// eachRow calls fn with each row of the batch and its bet's registry
// number: as many rows as its record says, each of its agency.
func (b *batch) eachRow(fn func(seq uint64, row []byte) error) error {
	var prefix [24]byte
	agency := append(strconv.AppendInt(prefix[:0], int64(b.agency), 10), ',')
	v, seq, n := b.value, b.first, 0
	for {
		row, rest, more := bytes.Cut(v, newline)
		n++
		if n > b.rows {
			return b.damaged("it holds more than its %d rows", b.rows)
		}
		if len(row) == 0 {
			return badRow(seq, fmt.Errorf("%w: empty row", ErrRow))
		}
		if !bytes.HasPrefix(row, agency) {
			return b.damaged("its row for bet %d is not of agency %d", seq, b.agency)
		}
		if err := fn(seq, row); err != nil {
			return err
		}
		if !more {
			break
		}
		v, seq = rest, seq+1
	}
	if n != b.rows {
		return b.damaged("it holds %d rows, its checksum record says %d", n, b.rows)
	}
	return nil
}

// sumAll gives every batch of a store written before the records (format
// 1) its checksum record, in tx: the conversion to format 2 (one
// transaction: every value is written again). Each batch's agency is its
// first row's, and every row must be of it.
func sumAll(tx *bolt.Tx) error {
	bets := tx.Bucket(bucketBets)
	bets.FillPercent = 1.0
	type rewrite struct{ key, value []byte }
	var all []rewrite
	err := batchesOf(tx, nil, func(b *batch) error {
		if b.agency == 0 {
			return b.damaged("its first row has no agency")
		}
		for row := range bytes.SplitSeq(b.value, newline) {
			if a, ok := rowAgency(row); !ok || a != b.agency {
				return b.damaged("its rows are not all of agency %d", b.agency)
			}
		}
		key := fmt.Appendf(nil, "%0*d", keyLen, b.first)
		value := appendSumRecord(bytes.Clone(b.value), b.agency, b.rows, batchSum(key, b.value))
		all = append(all, rewrite{key, value})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range all { // not while the cursor walks the bucket
		if err := bets.Put(r.key, r.value); err != nil {
			return err
		}
	}
	return nil
}
