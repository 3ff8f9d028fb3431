package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/loteria-nacional/tp0/internal/testkit"
	"github.com/loteria-nacional/tp0/lottery"
)

// appendReq is the write Append queues for the committer, with where its
// receipt lands.
func appendReq(s *Store, agency int, first uint64, n int, receipt *Receipt) *writeReq {
	bets := testkit.Bets(agency, n)
	return &writeReq{done: make(chan error, 1), run: func(tx *bolt.Tx, mem *arena) error {
		var err error
		*receipt, err = s.appendTx(tx, mem, agency, first, lottery.BetSlice(bets))
		return err
	}}
}

// A write that fails its group's transaction for a reason of its own (one
// agency's digest garbled) fails alone: the other agencies' batches of the
// same group commit, and none of them is told of the culprit's damage.
func TestStore_GroupFailureLeavesOthers(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bets.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for a := 1; a <= 3; a++ {
		if _, err := s.Append(a, 0, lottery.BetSlice(testkit.Bets(a, 2))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDigests).Put(agencyKey(2), []byte("zz"))
	}); err != nil {
		t.Fatal(err)
	}
	receipts := make([]Receipt, 4)
	group := []*writeReq{appendReq(s, 1, 2, 3, &receipts[1]), appendReq(s, 2, 2, 3, &receipts[2]), appendReq(s, 3, 2, 3, &receipts[3])}
	s.commitGroup(group, make([]error, len(group)))
	for i, req := range group {
		a := i + 1
		err := <-req.done
		if a == 2 {
			if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), "bucket digests key 000002") {
				t.Errorf("agency 2 (garbled digest): %v, want ErrInvalidFile naming its key", err)
			}
			continue
		}
		if err != nil || receipts[a].Stored != 3 || receipts[a].Committed != 5 {
			t.Errorf("agency %d: %+v, %v; want its 3 bets stored beside the culprit", a, receipts[a], err)
		}
	}
	r, err := s.Round()
	if err != nil {
		t.Fatal(err)
	}
	if r.Committed[1] != 5 || r.Committed[2] != 2 || r.Committed[3] != 5 {
		t.Fatalf("committed %v, want 1:5 2:2 3:5", r.Committed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
