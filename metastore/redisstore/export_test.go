package redisstore

// AllPutsLarge makes every Put take putLarge, so the conformance suite
// checks it too.
func AllPutsLarge(s *Store) *Store {
	s.largeValue = 0
	return s
}

// The Cluster outbox's names, for a test that leaves events in one.
func OutboxOf(s *Store, slot int) string { return s.outboxOf(slot) }
func SlotsKey(s *Store) string           { return s.slotsKey() }
func UsesOutboxes(s *Store) bool         { return s.cluster }

const RelaySweep = relaySweep
