package redisstore

import (
	"strings"
	"testing"
)

// hashTag is the part of key Redis Cluster hashes (see the CLUSTER KEYSLOT
// documentation): the text between the first '{' and the next '}', if
// non-empty, else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

// The keys each script or MULTI touches share one cluster slot, whatever the
// names contain, for any prefix without "{}" (see keys.go).
func TestKeysShareSlot(t *testing.T) {
	for _, prefix := range []string{"ferry:", "", "{ferry}:", "a{b:", "x}:", "{:", "}{:"} {
		s := New(nil, prefix)
		for _, name := range []string{"i", "a}b", "{x}", "}", "{", "a:b}:z"} {
			z, h := s.indexKeys(name)
			if !strings.HasPrefix(z, prefix) || !strings.HasPrefix(h, prefix) || z == h {
				t.Errorf("prefix %q index %q: keys %q, %q", prefix, name, z, h)
			}
			if hashTag(z) != hashTag(h) {
				t.Errorf("prefix %q index %q: %q and %q hash differently", prefix, name, z, h)
			}
			if l, f := s.lockKey(name), s.fenceKey(); hashTag(l) != hashTag(f) {
				t.Errorf("prefix %q lock %q: %q and %q hash differently", prefix, name, l, f)
			}
		}
	}
}

// keySlot agrees with the cluster spec's examples, and every outbox tag
// lands in its slot; the cluster conformance run checks the rest (a
// script whose outbox were elsewhere would fail with CROSSSLOT).
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{"foo": 12182, "123456789": 0x31C3, "{user1000}.following": keySlot("user1000"), "a{}b": keySlot("a{}b")} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
	for slot := range numSlots {
		if got := keySlot("p:{" + slotTag(slot) + "}:ob"); got != slot {
			t.Fatalf("the outbox of slot %d hashes to %d", slot, got)
		}
	}
}
