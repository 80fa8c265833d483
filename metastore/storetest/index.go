package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/metastore"
)

// fill puts members into index, each with value "v:"+member.
func fill(t *testing.T, s metastore.Store, index string, members ...string) {
	t.Helper()
	for _, m := range members {
		if err := s.IndexPut(t.Context(), index, m, []byte("v:"+m)); err != nil {
			t.Fatalf("IndexPut(%q, %q): %v", index, m, err)
		}
	}
}

// list returns the members of one page and checks each value fill wrote.
func list(t *testing.T, s metastore.Store, index string, q metastore.Query) ([]string, bool) {
	t.Helper()
	entries, more, err := s.IndexList(t.Context(), index, q)
	if err != nil {
		t.Fatalf("IndexList(%q, %+v): %v", index, q, err)
	}
	members := make([]string, len(entries))
	for i, e := range entries {
		members[i] = e.Member
		if string(e.Value) != "v:"+e.Member {
			t.Fatalf("IndexList(%q, %+v): %q has value %q", index, q, e.Member, e.Value)
		}
	}
	return members, more
}

type listCase struct {
	q    metastore.Query
	want []string
	more bool
}

func checkLists(t *testing.T, s metastore.Store, index string, cases []listCase) {
	t.Helper()
	for _, c := range cases {
		got, more := list(t, s, index, c.q)
		if !slices.Equal(got, c.want) || more != c.more {
			t.Errorf("IndexList(%q, %+v) = %q, more=%v; want %q, more=%v", index, c.q, got, more, c.want, c.more)
		}
	}
}

func sorted(ms []string) []string {
	out := slices.Clone(ms)
	sort.Strings(out) // byte order
	return out
}

func reversed(ms []string) []string {
	out := slices.Clone(ms)
	slices.Reverse(out)
	return out
}

// Members sort by raw bytes: upper case before lower, multi-byte UTF-8 last.
func testIndexOrder(t *testing.T, s metastore.Store) {
	members := []string{"b", "a", "B", "a/b", "a:b", "ab", "a\x7f", "é", "~", "0", "a b", "日本", "a\x00b", "Z"}
	rand.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	fill(t, s, "order", members...)
	want := sorted(members)
	checkLists(t, s, "order", []listCase{
		{metastore.Query{}, want, false},
		{metastore.Query{Desc: true}, reversed(want), false},
	})
}

func testIndexPrefix(t *testing.T, s metastore.Store) {
	members := []string{"a", "aa", "ab", "abc", "ab/x", "ab:y", "ab~", "abé", "ab\U0010FFFF", "abz", "ac", "b", "é", "éa", "f"}
	fill(t, s, "p", members...)
	withAB := []string{"ab", "ab/x", "ab:y", "abc", "abz", "ab~", "abé", "ab\U0010FFFF"}
	checkLists(t, s, "p", []listCase{
		{metastore.Query{Prefix: "ab"}, sorted(withAB), false},
		{metastore.Query{Prefix: "ab", Desc: true}, reversed(sorted(withAB)), false},
		{metastore.Query{Prefix: "a"}, sorted([]string{"a", "aa", "ac", "ab", "abc", "ab/x", "ab:y", "ab~", "abé", "ab\U0010FFFF", "abz"}), false},
		{metastore.Query{Prefix: "ab/"}, []string{"ab/x"}, false},
		{metastore.Query{Prefix: "é"}, []string{"é", "éa"}, false},
		{metastore.Query{Prefix: "é", Desc: true}, []string{"éa", "é"}, false},
		{metastore.Query{Prefix: "abc"}, []string{"abc"}, false},
		{metastore.Query{Prefix: "abd"}, []string{}, false},
		{metastore.Query{Prefix: "zz"}, []string{}, false},
		{metastore.Query{Prefix: "0", Desc: true}, []string{}, false},
	})
}

// After and Before are exclusive and name the bounds in listing order.
func testIndexBounds(t *testing.T, s metastore.Store) {
	fill(t, s, "b", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	checkLists(t, s, "b", []listCase{
		{metastore.Query{After: "c"}, []string{"d", "e", "f", "g", "h", "i", "j"}, false},
		{metastore.Query{After: "cc"}, []string{"d", "e", "f", "g", "h", "i", "j"}, false},
		{metastore.Query{Before: "d"}, []string{"a", "b", "c"}, false},
		{metastore.Query{After: "b", Before: "f"}, []string{"c", "d", "e"}, false},
		{metastore.Query{After: "f", Before: "c"}, []string{}, false},
		{metastore.Query{After: "c", Before: "d"}, []string{}, false},
		{metastore.Query{After: "j"}, []string{}, false},
		{metastore.Query{Before: "a"}, []string{}, false},
		{metastore.Query{Desc: true, After: "f"}, []string{"e", "d", "c", "b", "a"}, false},
		{metastore.Query{Desc: true, After: "cc"}, []string{"c", "b", "a"}, false},
		{metastore.Query{Desc: true, Before: "f"}, []string{"j", "i", "h", "g"}, false},
		{metastore.Query{Desc: true, After: "h", Before: "c"}, []string{"g", "f", "e", "d"}, false},
		{metastore.Query{Desc: true, After: "c", Before: "h"}, []string{}, false},
		{metastore.Query{Desc: true, After: "a"}, []string{}, false},
	})

	// The prefix is itself a member: After and Before equal to it exclude it.
	fill(t, s, "xb", "w", "x/", "x/a", "x/b", "x/c", "x/d", "x/e", "y")
	all := []string{"x/", "x/a", "x/b", "x/c", "x/d", "x/e"}
	checkLists(t, s, "xb", []listCase{
		{metastore.Query{Prefix: "x/"}, all, false},
		{metastore.Query{Prefix: "x/", After: "x/b"}, all[3:], false},
		{metastore.Query{Prefix: "x/", After: "w"}, all, false},
		{metastore.Query{Prefix: "x/", After: "x/"}, all[1:], false},
		{metastore.Query{Prefix: "x/", After: "x/zz"}, []string{}, false},
		{metastore.Query{Prefix: "x/", Before: "z"}, all, false},
		{metastore.Query{Prefix: "x/", Before: "x/d"}, all[:4], false},
		{metastore.Query{Prefix: "x/", Before: "x/"}, []string{}, false},
		{metastore.Query{Prefix: "x/", After: "x/a", Before: "x/e"}, all[2:5], false},
		{metastore.Query{Prefix: "x/", Desc: true, After: "y"}, reversed(all), false},
		{metastore.Query{Prefix: "x/", Desc: true, After: "x/c"}, []string{"x/b", "x/a", "x/"}, false},
		{metastore.Query{Prefix: "x/", Desc: true, After: "x/"}, []string{}, false},
		{metastore.Query{Prefix: "x/", Desc: true, Before: "x/c"}, []string{"x/e", "x/d"}, false},
		{metastore.Query{Prefix: "x/", Desc: true, Before: "x/"}, reversed(all[1:]), false},
		{metastore.Query{Prefix: "x/", Desc: true, Before: "w"}, reversed(all), false},
	})
}

// more is true exactly when a matching member lies beyond the page.
func testIndexLimit(t *testing.T, s metastore.Store) {
	fill(t, s, "l", "a", "b", "c", "d", "e")
	checkLists(t, s, "l", []listCase{
		{metastore.Query{Limit: 4}, []string{"a", "b", "c", "d"}, true},
		{metastore.Query{Limit: 5}, []string{"a", "b", "c", "d", "e"}, false},
		{metastore.Query{Limit: 6}, []string{"a", "b", "c", "d", "e"}, false},
		{metastore.Query{Limit: 1}, []string{"a"}, true},
		{metastore.Query{After: "a", Limit: 3}, []string{"b", "c", "d"}, true},
		{metastore.Query{After: "a", Limit: 4}, []string{"b", "c", "d", "e"}, false},
		{metastore.Query{Before: "d", Limit: 3}, []string{"a", "b", "c"}, false},
		{metastore.Query{Before: "d", Limit: 2}, []string{"a", "b"}, true},
		{metastore.Query{Desc: true, Limit: 4}, []string{"e", "d", "c", "b"}, true},
		{metastore.Query{Desc: true, After: "e", Limit: 4}, []string{"d", "c", "b", "a"}, false},
		{metastore.Query{Desc: true, Before: "b", Limit: 3}, []string{"e", "d", "c"}, false},
		{metastore.Query{Desc: true, Before: "a", Limit: 3}, []string{"e", "d", "c"}, true},
	})

	// Members outside the prefix do not count towards more.
	fill(t, s, "lp", "o", "p/1", "p/2", "p/3", "q")
	checkLists(t, s, "lp", []listCase{
		{metastore.Query{Prefix: "p/", Limit: 3}, []string{"p/1", "p/2", "p/3"}, false},
		{metastore.Query{Prefix: "p/", Limit: 2}, []string{"p/1", "p/2"}, true},
		{metastore.Query{Prefix: "p/", Desc: true, Limit: 3}, []string{"p/3", "p/2", "p/1"}, false},
		{metastore.Query{Prefix: "p/", Desc: true, Limit: 2}, []string{"p/3", "p/2"}, true},
	})

	// An unset limit means DefaultLimit.
	var many []string
	for i := range metastore.DefaultLimit + 1 {
		many = append(many, fmt.Sprintf("%04d", i))
	}
	fill(t, s, "ld", many...)
	checkLists(t, s, "ld", []listCase{
		{metastore.Query{}, many[:metastore.DefaultLimit], true},
		{metastore.Query{Limit: -1, Desc: true}, reversed(many)[:metastore.DefaultLimit], true},
		{metastore.Query{After: many[0]}, many[1:], false},
		{metastore.Query{Limit: math.MaxInt, After: many[90]}, many[91:], false},
	})
}

// Paging with After cursors visits every member exactly once, both ways.
func testIndexPaging(t *testing.T, s metastore.Store) {
	var members []string
	for i := range 300 {
		members = append(members, fmt.Sprintf("m/%03d:%s", i, strings.Repeat("x", i%3)))
	}
	shuffled := slices.Clone(members)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	fill(t, s, "pg", "l", "m", "n")
	fill(t, s, "pg", shuffled...)

	for _, desc := range []bool{false, true} {
		want := members
		if desc {
			want = reversed(members)
		}
		var got []string
		q := metastore.Query{Prefix: "m/", Limit: 7, Desc: desc}
		for pages := 0; ; pages++ {
			if pages > len(members) {
				t.Fatalf("desc=%v: paging does not end", desc)
			}
			page, more := list(t, s, "pg", q)
			got = append(got, page...)
			if !more {
				break
			}
			if len(page) != q.Limit {
				t.Fatalf("desc=%v: short page of %d with more=true", desc, len(page))
			}
			q.After = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("desc=%v: paging returned %d members, want %d in order", desc, len(got), len(want))
		}
	}

	// Without a prefix the neighbours appear too, in place.
	var got []string
	q := metastore.Query{Limit: 50}
	for {
		page, more := list(t, s, "pg", q)
		got = append(got, page...)
		if !more {
			break
		}
		q.After = page[len(page)-1]
	}
	want := append(append([]string{"l", "m"}, members...), "n")
	if !slices.Equal(got, want) {
		t.Fatalf("unprefixed paging returned %d members, want %d in order", len(got), len(want))
	}
}

// Get, Delete and Len on one index "g": missing, filled, replaced, emptied
// and used again.
func testIndexGetDeleteLen(t *testing.T, s metastore.Store) {
	checkMissingIndex(t, s, "g")
	checkIndexPutReplace(t, s, "g")
	checkIndexDeleteToEmpty(t, s, "g")
}

// checkMissingIndex checks that an index nothing was put in reads as
// empty, not as an error.
func checkMissingIndex(t *testing.T, s metastore.Store, index string) {
	_, err := s.IndexGet(t.Context(), index, "m")
	wantErr(t, "IndexGet on missing index", err, metastore.ErrNotFound)
	wantLen(t, s, index, 0)
	if got, more := list(t, s, index, metastore.Query{}); len(got) != 0 || more {
		t.Fatalf("IndexList on missing index = %q, %v", got, more)
	}
	if err := s.IndexDelete(t.Context(), index, "m"); err != nil {
		t.Fatalf("IndexDelete on missing index: %v", err)
	}
}

// checkIndexPutReplace leaves index with one, two and three.
func checkIndexPutReplace(t *testing.T, s metastore.Store, index string) {
	binary := []byte{0, 0xff, 0, 'x', 0xfe}
	mustIndexPut(t, s, index, "one", binary)
	mustIndexPut(t, s, index, "two", []byte{})
	mustIndexPut(t, s, index, "three", []byte("3"))
	wantLen(t, s, index, 3)
	wantIndexValue(t, s, index, "one", binary)
	wantIndexValue(t, s, index, "two", []byte{})
	_, err := s.IndexGet(t.Context(), index, "four")
	wantErr(t, "IndexGet missing member", err, metastore.ErrNotFound)

	// Replacing keeps one member with the new value.
	mustIndexPut(t, s, index, "one", []byte("uno"))
	wantLen(t, s, index, 3)
	wantIndexValue(t, s, index, "one", []byte("uno"))
	entries, _, err := s.IndexList(t.Context(), index, metastore.Query{})
	if err != nil {
		t.Fatalf("IndexList: %v", err)
	}
	wantEntries := []metastore.Entry{
		{Member: "one", Value: []byte("uno")},
		{Member: "three", Value: []byte("3")},
		{Member: "two", Value: []byte{}},
	}
	if !slices.EqualFunc(entries, wantEntries, func(a, b metastore.Entry) bool {
		return a.Member == b.Member && bytes.Equal(a.Value, b.Value)
	}) {
		t.Fatalf("IndexList = %q, want %q", entries, wantEntries)
	}
}

// checkIndexDeleteToEmpty deletes what checkIndexPutReplace left, once and
// twice, then uses the emptied index again.
func checkIndexDeleteToEmpty(t *testing.T, s metastore.Store, index string) {
	ctx := t.Context()
	if err := s.IndexDelete(ctx, index, "one"); err != nil {
		t.Fatalf("IndexDelete: %v", err)
	}
	_, err := s.IndexGet(ctx, index, "one")
	wantErr(t, "IndexGet after IndexDelete", err, metastore.ErrNotFound)
	wantLen(t, s, index, 2)
	if err := s.IndexDelete(ctx, index, "one"); err != nil {
		t.Fatalf("IndexDelete of a deleted member: %v", err)
	}
	wantLen(t, s, index, 2)
	for _, m := range []string{"two", "three"} {
		if err := s.IndexDelete(ctx, index, m); err != nil {
			t.Fatalf("IndexDelete: %v", err)
		}
	}
	wantLen(t, s, index, 0)
	if got, more := list(t, s, index, metastore.Query{}); len(got) != 0 || more {
		t.Fatalf("IndexList on emptied index = %q, %v", got, more)
	}
	// An emptied index can be used again.
	mustIndexPut(t, s, index, "again", nil)
	wantLen(t, s, index, 1)
}

// IndexDrop removes every member of one index at once and no other's; a
// dropped index can be used again.
func testIndexDrop(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	if err := s.IndexDrop(ctx, "d"); err != nil {
		t.Fatalf("IndexDrop on missing index: %v", err)
	}
	for _, m := range []string{"1", "2", "3"} {
		mustIndexPut(t, s, "d", m, []byte(m))
		mustIndexPut(t, s, "d2", m, []byte(m))
	}
	if err := s.IndexDrop(ctx, "d"); err != nil {
		t.Fatalf("IndexDrop: %v", err)
	}
	wantLen(t, s, "d", 0)
	if got, more := list(t, s, "d", metastore.Query{}); len(got) != 0 || more {
		t.Fatalf("IndexList on dropped index = %q, %v", got, more)
	}
	if _, err := s.IndexGet(ctx, "d", "1"); !errors.Is(err, metastore.ErrNotFound) {
		t.Fatalf("IndexGet on dropped index: %v", err)
	}
	wantLen(t, s, "d2", 3)
	mustIndexPut(t, s, "d", "again", nil)
	wantLen(t, s, "d", 1)
}

// Indexes whose names are prefixes of each other, or contain separators
// and braces, stay separate from each other and from records.
func testIndexIsolation(t *testing.T, s metastore.Store) {
	ctx := t.Context()
	names := []string{"a", "ab", "a:b", "a/b", "a}", "{a}", "a:b}:z", "r:a", "i:a"}
	for _, n := range names {
		fill(t, s, n, "shared", "only:"+n)
	}
	put(t, s, "a", []byte("record"), metastore.Cond{})
	for _, n := range names {
		wantLen(t, s, n, 2)
		got, _ := list(t, s, n, metastore.Query{})
		if want := sorted([]string{"shared", "only:" + n}); !slices.Equal(got, want) {
			t.Errorf("index %q lists %q, want %q", n, got, want)
		}
		got, _ = list(t, s, n, metastore.Query{Prefix: "only:"})
		if !slices.Equal(got, []string{"only:" + n}) {
			t.Errorf("index %q with prefix lists %q", n, got)
		}
	}
	_, err := s.IndexGet(ctx, "a", "only:ab")
	wantErr(t, "IndexGet of another index's member", err, metastore.ErrNotFound)
	if err := s.IndexDelete(ctx, "ab", "shared"); err != nil {
		t.Fatalf("IndexDelete: %v", err)
	}
	wantLen(t, s, "a", 2)
	wantLen(t, s, "ab", 1)
	wantRecord(t, get(t, s, "a"), "record", 1, 0)
}

func mustIndexPut(t *testing.T, s metastore.Store, index, member string, value []byte) {
	t.Helper()
	if err := s.IndexPut(t.Context(), index, member, value); err != nil {
		t.Fatalf("IndexPut(%q, %q): %v", index, member, err)
	}
}

func wantIndexValue(t *testing.T, s metastore.Store, index, member string, want []byte) {
	t.Helper()
	got, err := s.IndexGet(t.Context(), index, member)
	if err != nil {
		t.Fatalf("IndexGet(%q, %q): %v", index, member, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("IndexGet(%q, %q) = %q, want %q", index, member, got, want)
	}
}

func wantLen(t *testing.T, s metastore.Store, index string, want int64) {
	t.Helper()
	n, err := s.IndexLen(t.Context(), index)
	if err != nil {
		t.Fatalf("IndexLen(%q): %v", index, err)
	}
	if n != want {
		t.Fatalf("IndexLen(%q) = %d, want %d", index, n, want)
	}
}
