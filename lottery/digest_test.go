package lottery

import "testing"

func TestDigest(t *testing.T) {
	t.Parallel()
	a, b := validBet(), validBet()
	b.FirstName, b.LastName = "Santiago", "Lionel D'Elia" // same letters, other fields
	one := NewDigest()
	one.Add(&a)
	one.Add(&b)

	// Saved after the first bet and restored, it goes on to the same sum.
	half := NewDigest()
	half.Add(&a)
	state, err := half.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var resumed Digest
	if err := resumed.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	resumed.Add(&b)
	if resumed.Sum() != one.Sum() {
		t.Fatal("a restored digest differs")
	}
	swapped := NewDigest()
	swapped.Add(&b)
	swapped.Add(&a)
	if swapped.Sum() == one.Sum() {
		t.Fatal("order does not change the digest")
	}
	moved := NewDigest()
	moved.Add(&a)
	a2 := a
	a2.FirstName, a2.LastName = "Santiago Lionel D", "'Elia"
	moved.Add(&a2)
	if moved.Sum() == one.Sum() {
		t.Fatal("moving letters between names does not change the digest")
	}
	if NewDigest().Sum() == one.Sum() {
		t.Fatal("no bets and two bets agree")
	}
	if err := new(Digest).UnmarshalBinary([]byte("garbage")); err == nil {
		t.Fatal("garbage state accepted")
	}
}
