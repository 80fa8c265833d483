package backendtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
)

func keysOf(objs []bucket.ObjectInfo) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return ks
}

func testList(t *testing.T, b bucket.Backend) {
	keys := putListKeys(t, b)
	all, more, err := b.List(context.Background(), "", "", 1000)
	if err != nil || more || !slices.Equal(keysOf(all), keys) {
		t.Fatalf("list all = %v more=%v err=%v\nwant %v", keysOf(all), more, err, keys)
	}
	for _, o := range all {
		if o.Size != int64(len(o.Key)) || o.ETag == "" || o.LastModified.IsZero() {
			t.Fatalf("listed %+v", o)
		}
	}
	l := listCheck{t: t, b: b, keys: keys}
	l.paging()
	l.cursors()
}

// putListKeys puts the keys testList lists, each holding its own name, and
// returns them in byte order.
func putListKeys(t *testing.T, b bucket.Backend) []string {
	// Byte order: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30), so a
	// directory walk that lists "a" before "a-b" is wrong.
	keys := []string{"l/a/c/d", "l/a0", "l/a-b", "l/a.b", "l/a/b", "l/b", "l/a-/x", "l/a_"}
	for i := range 17 {
		keys = append(keys, fmt.Sprintf("l/p/%02d", i))
	}
	for _, k := range keys {
		put(t, b, k, []byte(k))
	}
	slices.Sort(keys) // plain string order is byte order
	if keys[0] != "l/a-/x" || keys[1] != "l/a-b" || keys[2] != "l/a.b" || keys[3] != "l/a/b" || keys[5] != "l/a0" {
		t.Fatalf("test keys sort as %v", keys[:8])
	}
	return keys
}

// listCheck compares b's List with what it must return when holding keys
// (in byte order) and nothing else.
type listCheck struct {
	t    *testing.T
	b    bucket.Backend
	keys []string
}

// want is what List(prefix, after, limit) must return.
func (l listCheck) want(prefix, after string, limit int) ([]string, bool) {
	var ks []string
	for _, k := range l.keys {
		if strings.HasPrefix(k, prefix) && k > after {
			ks = append(ks, k)
		}
	}
	if len(ks) > limit {
		return ks[:limit], true
	}
	return ks, false
}

func (l listCheck) check(prefix, after string, limit int) []string {
	l.t.Helper()
	objs, more, err := l.b.List(context.Background(), prefix, after, limit)
	if err != nil {
		l.t.Fatalf("List(%q, %q, %d): %v", prefix, after, limit, err)
	}
	wk, wmore := l.want(prefix, after, limit)
	if got := keysOf(objs); !slices.Equal(got, wk) || more != wmore {
		l.t.Fatalf("List(%q, %q, %d) = %v more=%v\nwant %v more=%v", prefix, after, limit, got, more, wk, wmore)
	}
	return wk
}

// paging with small limits returns every key once, and `more` is exact
// (including on a page that ends exactly at the last key).
func (l listCheck) paging() {
	for _, limit := range []int{1, 2, 3, 5, 7, 25, 26} {
		var seen []string
		after := ""
		for {
			page := l.check("l/", after, limit)
			seen = append(seen, page...)
			if _, more := l.want("l/", after, limit); !more {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(seen, l.keys) {
			l.t.Fatalf("limit %d paged %v", limit, seen)
		}
	}
}

// cursors lists from prefixes and cursors that fall on, inside and
// between directories.
func (l listCheck) cursors() {
	for _, c := range []struct {
		prefix, after string
	}{
		{"l/a", ""},        // not on a '/': takes "l/a-b", "l/a/b", "l/a0"...
		{"l/a/", ""},       // a directory
		{"l/a/c", ""},      // a directory's name without the '/'
		{"l/p/1", ""},      // part of a segment
		{"l/p/16", ""},     // exactly one key
		{"l/", "l/a"},      // cursor that is no key, before "l/a-/x"
		{"l/", "l/a-"},     // cursor that is a directory name
		{"l/", "l/a/"},     // cursor inside a directory
		{"l/", "l/a/c"},    // cursor is a directory, its keys follow
		{"l/", "l/a/c/d"},  // cursor is the last key of a directory
		{"l/", "l/p/05"},   // an existing key
		{"l/", "l/z"},      // past everything
		{"l/a/", "l/a.z"},  // cursor before the prefix
		{"l/a/", "l/a0"},   // cursor after the prefix
		{"nothing/", ""},   // no such prefix
		{"l/b", "l/a/c/d"}, // one key
	} {
		l.check(c.prefix, c.after, 1000)
		l.check(c.prefix, c.after, 2)
	}
}
