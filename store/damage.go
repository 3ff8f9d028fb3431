package store

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Damage found while the store is in use: guard turns bbolt's panics on a
// page it cannot read, and faults on the map, into errors at the store's
// boundary, and marks the store damaged so that every later call fails the
// same way. (A file is checked before it is opened: check.go.)

// Hint says what an operator can do about a damaged store; the central logs it.
const Hint = "restore the file from a backup (server restore), inspect it with 'server export --db FILE --check', or move it aside to start a new round (the file is left as it is)"

// guard turns a panic of bbolt on a damaged page (or a fault on the map,
// with SetPanicOnFault) into ErrInvalidFile in *err, and marks the store
// damaged. Use as: defer debug.SetPanicOnFault(debug.SetPanicOnFault(true));
// defer s.guard(&err).
func (s *Store) guard(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if cp, ok := r.(callerPanic); ok {
		panic(cp.v) // the caller's own code panicked, not bbolt
	}
	damage := fmt.Errorf("%w (%w): %s: bbolt: %v", ErrInvalidFile, ErrDamaged, s.path, r)
	s.damaged.CompareAndSwap(nil, &damage)
	*err = *s.damaged.Load()
}

// Damage returns the error that marked the store damaged (a read or write
// found the file damaged: every later call fails with it), or nil.
func (s *Store) Damage() error { return s.damage() }

// damage returns the error of a store found damaged, or nil.
func (s *Store) damage() error {
	if p := s.damaged.Load(); p != nil {
		return *p
	}
	return nil
}

// errDamagedData marks an error about what the file holds (a batch that
// fails its checksum, a stored row that does not parse): safe turns it
// into the store's damage error, naming the file.
var errDamagedData = errors.New("damaged data")

// safe runs fn with faults on the map turned into panics, and panics and
// damaged data into the store's damage error.
func (s *Store) safe(fn func() error) (err error) {
	if err := s.damage(); err != nil {
		return err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer s.guard(&err)
	if err = fn(); errors.Is(err, errDamagedData) {
		damage := fmt.Errorf("%w (%w): %s: %w", ErrInvalidFile, ErrDamaged, s.path, err)
		s.damaged.CompareAndSwap(nil, &damage)
		err = *s.damaged.Load()
	}
	return err
}

// callerPanic carries a panic of the caller's callback through guard, which
// lets it go on: only bbolt's own panics mean a damaged file.
type callerPanic struct{ v any }

// callerFunc wraps a callback of the caller's that runs inside a
// transaction: a panic of its own crosses guard as the caller's. One
// wrapper serves a whole scan (a closure per call was an allocation per bet).
func callerFunc[A, T any](fn func(A) T) func(A) T {
	return func(a A) T {
		defer func() {
			if r := recover(); r != nil {
				panic(callerPanic{r})
			}
		}()
		return fn(a)
	}
}
