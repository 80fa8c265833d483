package lru

import "testing"

func TestEvictsLeastRecentlyUsedWithinBytes(t *testing.T) {
	c := New[string](10)
	c.Add("a", "A", 4)
	c.Add("b", "B", 4)
	if _, ok := c.Get("a"); !ok { // a is now more recent than b
		t.Fatal("a missing")
	}
	c.Add("c", "C", 4) // 12 > 10: b goes
	if _, ok := c.Get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	if v, ok := c.Get("a"); !ok || v != "A" {
		t.Fatalf("a = %q, %v", v, ok)
	}
	if c.Bytes() != 8 {
		t.Fatalf("bytes = %d, want 8", c.Bytes())
	}
	c.Add("a", "A2", 2) // replacing adjusts the size
	if v, _ := c.Get("a"); v != "A2" || c.Bytes() != 6 {
		t.Fatalf("after replace: a = %q, bytes %d", v, c.Bytes())
	}
	c.Remove("c")
	if _, ok := c.Get("c"); ok || c.Bytes() != 2 {
		t.Fatalf("after remove: bytes %d", c.Bytes())
	}
	c.Add("huge", "H", 11) // larger than the cache: not kept, nothing evicted
	if _, ok := c.Get("huge"); ok || c.Bytes() != 2 {
		t.Fatalf("oversized value kept: bytes %d", c.Bytes())
	}
}
