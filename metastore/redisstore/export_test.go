package redisstore

// AllPutsLarge makes every Put take putLarge, so the conformance suite
// checks it too.
func AllPutsLarge(s *Store) *Store {
	s.largeValue = 0
	return s
}
