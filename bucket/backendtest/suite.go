// Package backendtest is the one conformance suite every blob backend
// passes, the real S3 server's included. Each subtest cleans up after
// itself, and teardown fails if any object or multipart upload is left.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
)

// Run runs the suite against the backend newBackend returns. Capabilities
// the backend lacks (nil Multipart, Staging, Pinger) skip their subtests.
func Run(t *testing.T, newBackend func(t *testing.T) bucket.Composer) {
	c := newBackend(t)
	t.Cleanup(func() { assertEmpty(t, c) })
	// core runs a test of the core interface alone.
	core := func(fn func(*testing.T, bucket.Backend)) func(*testing.T, bucket.Composer) {
		return func(t *testing.T, c bucket.Composer) { fn(t, c.Backend) }
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, bucket.Composer)
	}{
		{"PutGetHead", core(testPutGetHead)},
		{"ContentType", testContentType},
		{"Ranges", core(testRanges)},
		{"Missing", core(testMissing)},
		{"InvalidKeys", testInvalidKeys},
		{"Overwrite", core(testOverwrite)},
		{"NoPartialObject", core(testNoPartialObject)},
		{"List", core(testList)},
		{"KeyConflict", core(testKeyConflict)},
		{"ShortBody", core(testShortBody)},
		{"Multipart", testMultipart},
		{"MultipartRules", testMultipartRules},
		{"MultipartAbort", testMultipartAbort},
		{"Staging", testStaging},
		{"StagingAt", testStagingAt},
		{"CopyPart", testCopyPart},
		{"Ping", testPing},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, c) })
	}
}

func assertEmpty(t *testing.T, c bucket.Composer) {
	b := c.Backend
	t.Helper()
	ctx := context.Background()
	objs, _, err := b.List(ctx, "", "", 1000)
	if err != nil || len(objs) != 0 {
		t.Errorf("left behind: %d objects (%v): %+v", len(objs), err, objs)
	}
	if mp := c.Multipart; mp != nil {
		ups, err := mp.ListMultipart(ctx, "")
		if err != nil || len(ups) != 0 {
			t.Errorf("left behind: %d multipart uploads (%v): %+v", len(ups), err, ups)
		}
	}
}

func random(n int) []byte {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return p
}

func sum(p []byte) string {
	s := sha256.Sum256(p)
	return hex.EncodeToString(s[:])
}

const testType = "application/x-ferry-test"

func put(t *testing.T, b bucket.Backend, key string, data []byte) bucket.ObjectInfo {
	t.Helper()
	info, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), bucket.PutOptions{ContentType: testType})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), key) })
	return info
}

func get(t *testing.T, b bucket.Backend, key string, rng *bucket.Range) ([]byte, bucket.ObjectInfo) {
	t.Helper()
	rc, info, err := b.Get(context.Background(), key, rng)
	if err != nil {
		t.Fatalf("get %s %+v: %v", key, rng, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data, info
}

func mustNotExist(t *testing.T, b bucket.Backend, key, why string) {
	t.Helper()
	if _, err := b.Head(context.Background(), key); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("%s: Head(%s) = %v, want ErrNotFound", why, key, err)
	}
}

func testPutGetHead(t *testing.T, b bucket.Backend) {
	for _, n := range []int{0, 1, 3<<20 + 17} {
		key := fmt.Sprintf("pgh/nested/dir/%d.bin", n)
		data := random(n)
		before := time.Now().Add(-time.Minute) // servers' clocks and second granularity
		info := put(t, b, key, data)
		if info.Key != key || info.Size != int64(n) || info.ETag == "" {
			t.Fatalf("put info = %+v", info)
		}
		got, ginfo := get(t, b, key, nil)
		if sum(got) != sum(data) || len(got) != n {
			t.Fatalf("%d bytes: round trip differs (got %d bytes)", n, len(got))
		}
		if ginfo.Key != key || ginfo.Size != int64(n) || ginfo.ETag != info.ETag {
			t.Fatalf("get info = %+v, put said %+v", ginfo, info)
		}
		h, err := b.Head(context.Background(), key)
		if err != nil || h.Key != key || h.Size != int64(n) || h.ETag != info.ETag || h.LastModified.Before(before) {
			t.Fatalf("head = %+v, %v (put said %+v)", h, err, info)
		}
		objs, _, err := b.List(context.Background(), key, "", 10)
		if err != nil || len(objs) != 1 || objs[0].Key != key || objs[0].Size != int64(n) || objs[0].ETag != h.ETag {
			t.Fatalf("list = %+v, %v; head said %+v", objs, err, h)
		}
	}
}

// A backend may not store content types (ObjectInfo.ContentType is then
// always empty), but one that does keeps it for Put and multipart alike.
func testContentType(t *testing.T, caps bucket.Composer) {
	b := caps.Backend
	ctx := context.Background()
	put(t, b, "ct/put", []byte("typed"))
	h, err := b.Head(ctx, "ct/put")
	if err != nil {
		t.Fatal(err)
	}
	stores := h.ContentType != ""
	if stores && h.ContentType != testType {
		t.Fatalf("head content type %q, want %q", h.ContentType, testType)
	}
	if _, g := get(t, b, "ct/put", nil); g.ContentType != h.ContentType {
		t.Fatalf("get content type %q, head %q", g.ContentType, h.ContentType)
	}
	if _, g := get(t, b, "ct/put", &bucket.Range{Offset: 1, Length: 2}); g.ContentType != h.ContentType {
		t.Fatalf("ranged get content type %q, head %q", g.ContentType, h.ContentType)
	}
	mp := caps.Multipart
	if mp == nil {
		return
	}
	id, err := mp.CreateMultipart(ctx, "ct/mp", bucket.PutOptions{ContentType: "text/x-ferry-mp"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.AbortMultipart(ctx, "ct/mp", id) })
	p, err := mp.UploadPart(ctx, "ct/mp", id, 1, strings.NewReader("x"), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.CompleteMultipart(ctx, "ct/mp", id, []bucket.Part{p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "ct/mp") })
	h, err = b.Head(ctx, "ct/mp")
	if want := map[bool]string{true: "text/x-ferry-mp", false: ""}[stores]; err != nil || h.ContentType != want {
		t.Fatalf("multipart content type %q (%v), want %q", h.ContentType, err, want)
	}
}

func testRanges(t *testing.T, b bucket.Backend) {
	data := random(1000)
	put(t, b, "ranges", data)
	for _, r := range []bucket.Range{
		{Offset: 0, Length: 1},     // first byte
		{Offset: 0, Length: 1000},  // all, exactly
		{Offset: 0, Length: -1},    // all, to the end
		{Offset: 10, Length: 20},   // middle
		{Offset: 500, Length: -1},  // to the end
		{Offset: 999, Length: 1},   // last byte
		{Offset: 999, Length: -1},  // last byte, to the end
		{Offset: 990, Length: 100}, // past the end: clipped
	} {
		got, info := get(t, b, "ranges", &r)
		end := int64(len(data))
		if r.Length >= 0 {
			end = min(r.Offset+r.Length, end)
		}
		if !bytes.Equal(got, data[r.Offset:end]) || info.Size != 1000 {
			t.Fatalf("range %+v: got %d bytes (want %d), info.Size %d (want the whole 1000)", r, len(got), end-r.Offset, info.Size)
		}
	}
	for _, r := range []bucket.Range{{Offset: 1000, Length: 1}, {Offset: 1000, Length: -1}, {Offset: 5000, Length: 10}, {Offset: -1, Length: 1}, {Offset: 10, Length: 0}} {
		if rc, _, err := b.Get(context.Background(), "ranges", &r); !errors.Is(err, bucket.ErrInvalidRange) {
			if err == nil {
				rc.Close()
			}
			t.Fatalf("range %+v: err = %v, want ErrInvalidRange", r, err)
		}
	}
	// Any range of an empty object starts past its end.
	put(t, b, "ranges-empty", nil)
	if rc, _, err := b.Get(context.Background(), "ranges-empty", &bucket.Range{Offset: 0, Length: -1}); !errors.Is(err, bucket.ErrInvalidRange) {
		if err == nil {
			rc.Close()
		}
		t.Fatalf("range of an empty object: err = %v, want ErrInvalidRange", err)
	}
}

func testMissing(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	for _, key := range []string{"missing", "missing/key", "pgh"} {
		if _, _, err := b.Get(ctx, key, nil); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatalf("get missing %s: %v", key, err)
		}
		if _, _, err := b.Get(ctx, key, &bucket.Range{Offset: 5, Length: 1}); !errors.Is(err, bucket.ErrNotFound) {
			t.Fatalf("ranged get missing %s: %v", key, err)
		}
		mustNotExist(t, b, key, "missing")
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("delete missing %s: %v", key, err)
		}
	}
	// A key under a directory of keys, and the directory itself, are missing
	// too, and deleting the directory's name deletes nothing.
	put(t, b, "dir/obj", []byte("x"))
	mustNotExist(t, b, "dir", "a directory of keys")
	mustNotExist(t, b, "dir/obj/below", "below an object")
	if err := b.Delete(ctx, "dir"); err != nil {
		t.Fatalf("delete a directory's name: %v", err)
	}
	if got, _ := get(t, b, "dir/obj", nil); string(got) != "x" {
		t.Fatalf("dir/obj = %q after deleting dir", got)
	}
}

func testInvalidKeys(t *testing.T, caps bucket.Composer) {
	b := caps.Backend
	ctx := context.Background()
	for _, key := range []string{"", "/abs", "../up", "a/../../up", "a//b", "a/./b", "dir/", `a\b`, "nul\x00",
		// Staging directories, in any letter case, and names no filesystem can hold.
		".ferry-staging", ".ferry-staging/sessions/0123", "sub/.ferry-staging/tmp/x", "a/.FERRY-STAGING",
		strings.Repeat("k", bucket.MaxSegmentLen+1), "dir/" + strings.Repeat("k", bucket.MaxSegmentLen+1) + "/x"} {
		if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, _, err := b.Get(ctx, key, nil); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Head(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Head(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := b.Delete(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
		if mp := caps.Multipart; mp != nil {
			if id, err := mp.CreateMultipart(ctx, key, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
				_ = mp.AbortMultipart(ctx, key, id)
				t.Errorf("CreateMultipart(%q) = %v, want ErrInvalidKey", key, err)
			}
		}
	}
}

func testOverwrite(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	first := put(t, b, "over", []byte("first version"))
	second := put(t, b, "over", []byte("second"))
	if got, _ := get(t, b, "over", nil); string(got) != "second" {
		t.Fatalf("after overwrite: %q", got)
	}
	if h, err := b.Head(ctx, "over"); err != nil || h.Size != 6 || h.ETag != second.ETag || h.ETag == first.ETag {
		t.Fatalf("head after overwrite = %+v, %v (first %s, second %s)", h, err, first.ETag, second.ETag)
	}
	if err := b.Delete(ctx, "over"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "over"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	mustNotExist(t, b, "over", "deleted")
}

// While a Put is streaming, readers see the old object or nothing, never
// the bytes so far.
func testNoPartialObject(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	for _, old := range []string{"", "old"} {
		key := "partial/new"
		if old != "" {
			key = "partial/old"
			put(t, b, key, []byte(old))
		}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			_, err := b.Put(ctx, key, pr, 10, bucket.PutOptions{})
			done <- err
		}()
		if _, err := pw.Write([]byte("01234")); err != nil { // returns once the backend has read it
			t.Fatal(err)
		}
		if old == "" {
			mustNotExist(t, b, key, "half-written")
		} else if got, _ := get(t, b, key, nil); string(got) != old {
			t.Fatalf("half-written overwrite: read %q, want the old %q", got, old)
		}
		_, _ = pw.Write([]byte("56789"))
		pw.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Delete(ctx, key) })
		if got, _ := get(t, b, key, nil); string(got) != "0123456789" {
			t.Fatalf("after put: %q", got)
		}
	}
}

func keysOf(objs []bucket.ObjectInfo) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return ks
}

func testList(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
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
	all, more, err := b.List(ctx, "", "", 1000)
	if err != nil || more || !slices.Equal(keysOf(all), keys) {
		t.Fatalf("list all = %v more=%v err=%v\nwant %v", keysOf(all), more, err, keys)
	}
	for _, o := range all {
		if o.Size != int64(len(o.Key)) || o.ETag == "" || o.LastModified.IsZero() {
			t.Fatalf("listed %+v", o)
		}
	}

	// want is what List(prefix, after, limit) must return.
	want := func(prefix, after string, limit int) ([]string, bool) {
		var ks []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) && k > after {
				ks = append(ks, k)
			}
		}
		if len(ks) > limit {
			return ks[:limit], true
		}
		return ks, false
	}
	check := func(prefix, after string, limit int) []string {
		t.Helper()
		objs, more, err := b.List(ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("List(%q, %q, %d): %v", prefix, after, limit, err)
		}
		wk, wmore := want(prefix, after, limit)
		if got := keysOf(objs); !slices.Equal(got, wk) || more != wmore {
			t.Fatalf("List(%q, %q, %d) = %v more=%v\nwant %v more=%v", prefix, after, limit, got, more, wk, wmore)
		}
		return wk
	}
	// Paging with small limits returns every key once, and `more` is exact
	// (including on a page that ends exactly at the last key).
	for _, limit := range []int{1, 2, 3, 5, 7, 25, 26} {
		var seen []string
		after := ""
		for {
			page := check("l/", after, limit)
			seen = append(seen, page...)
			if _, more := want("l/", after, limit); !more {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(seen, keys) {
			t.Fatalf("limit %d paged %v", limit, seen)
		}
	}
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
		check(c.prefix, c.after, 1000)
		check(c.prefix, c.after, 2)
	}
}

// A key that is also the directory of other keys is fine on S3 and a
// conflict on storage with real directories; either way nothing breaks.
func testKeyConflict(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	for _, order := range [][2]string{{"kc/a", "kc/a/b"}, {"kc/c/d", "kc/c"}} {
		put(t, b, order[0], []byte("first"))
		_, err := b.Put(ctx, order[1], strings.NewReader("second"), 6, bucket.PutOptions{})
		t.Cleanup(func() { _ = b.Delete(ctx, order[1]) })
		if err != nil && !errors.Is(err, bucket.ErrKeyConflict) {
			t.Fatalf("put %s next to %s: %v, want success or ErrKeyConflict", order[1], order[0], err)
		}
		if got, _ := get(t, b, order[0], nil); string(got) != "first" {
			t.Fatalf("%s = %q after putting %s", order[0], got, order[1])
		}
		if err != nil {
			mustNotExist(t, b, order[1], "refused with a conflict")
		} else if got, _ := get(t, b, order[1], nil); string(got) != "second" {
			t.Fatalf("%s = %q", order[1], got)
		}
	}
}

func testShortBody(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	_, err := b.Put(ctx, "short", bytes.NewReader(make([]byte, 10)), 20, bucket.PutOptions{})
	if err == nil {
		_ = b.Delete(ctx, "short")
		t.Fatal("a body shorter than its size was accepted")
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v, want it to wrap io.ErrUnexpectedEOF", err)
	}
	mustNotExist(t, b, "short", "a short put")
	// A short overwrite keeps the old object.
	put(t, b, "short-over", []byte("kept"))
	if _, err := b.Put(ctx, "short-over", strings.NewReader("abc"), 4, bucket.PutOptions{}); err == nil {
		t.Fatal("a short overwrite was accepted")
	}
	if got, _ := get(t, b, "short-over", nil); string(got) != "kept" {
		t.Fatalf("after a short overwrite: %q", got)
	}
	// Bytes beyond size are not read into the object.
	put(t, b, "long", nil)
	if _, err := b.Put(ctx, "long", strings.NewReader("0123456789"), 4, bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, b, "long", nil); string(got) != "0123" {
		t.Fatalf("put 4 of 10 bytes: %q", got)
	}
}

func multipart(t *testing.T, c bucket.Composer) bucket.Multipart {
	mp := c.Multipart
	if mp == nil {
		t.Skip("backend has no multipart capability")
	}
	return mp
}

func create(t *testing.T, mp bucket.Multipart, key string) string {
	t.Helper()
	id, err := mp.CreateMultipart(context.Background(), key, bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.AbortMultipart(context.Background(), key, id) })
	return id
}

func testMultipart(t *testing.T, caps bucket.Composer) {
	b := caps.Backend
	mp := multipart(t, caps)
	ctx := context.Background()
	p1, p2, p3 := random(int(bucket.MinPartSize)), random(int(bucket.MinPartSize)), []byte{42}
	id := create(t, mp, "mp/obj")
	other := create(t, mp, "other/obj")
	ups, err := mp.ListMultipart(ctx, "mp/")
	if err != nil || len(ups) != 1 || ups[0].Key != "mp/obj" || ups[0].UploadID != id {
		t.Fatalf("ListMultipart(mp/) = %+v, %v; want just %s", ups, err, id)
	}
	ups, err = mp.ListMultipart(ctx, "")
	if err != nil || len(ups) != 2 || ups[0].UploadID != id || ups[1].UploadID != other {
		t.Fatalf("ListMultipart() = %+v, %v; want %s and %s in key order", ups, err, id, other)
	}
	upload := func(n int, data []byte) bucket.Part {
		t.Helper()
		p, err := mp.UploadPart(ctx, "mp/obj", id, n, bytes.NewReader(data), int64(len(data)), nil)
		if err != nil || p.Number != n || p.Size != int64(len(data)) || p.ETag == "" {
			t.Fatalf("part %d = %+v, %v", n, p, err)
		}
		return p
	}
	// Out of order, and part 2 replaced by a re-upload.
	c := upload(3, p3)
	first2 := upload(2, random(int(bucket.MinPartSize)))
	b2 := upload(2, p2)
	a := upload(1, p1)
	_, err = mp.UploadPart(ctx, "mp/obj", id, 4, bytes.NewReader([]byte{1}), 2, nil)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a short part: %v, want an error wrapping io.ErrUnexpectedEOF", err)
	}
	if _, err := mp.CompleteMultipart(ctx, "mp/obj", id, []bucket.Part{a, first2, c}); err == nil {
		t.Fatal("completed with the replaced part's ETag")
	}
	mustNotExist(t, b, "mp/obj", "before completion")
	obj, err := mp.CompleteMultipart(ctx, "mp/obj", id, []bucket.Part{a, b2, c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "mp/obj") })
	want := slices.Concat(p1, p2, p3)
	if obj.Key != "mp/obj" || obj.Size != int64(len(want)) || obj.ETag == "" {
		t.Fatalf("complete = %+v", obj)
	}
	got, info := get(t, b, "mp/obj", nil)
	if sum(got) != sum(want) || info.Size != int64(len(want)) {
		t.Fatalf("assembled object differs: %d bytes, sha %s, want %d bytes, sha %s", len(got), sum(got), len(want), sum(want))
	}
	if tail, _ := get(t, b, "mp/obj", &bucket.Range{Offset: 2*bucket.MinPartSize - 1, Length: -1}); !bytes.Equal(tail, []byte{p2[len(p2)-1], 42}) {
		t.Fatalf("range across the last part boundary: %v", tail)
	}
	if ups, _ := mp.ListMultipart(ctx, "mp/"); len(ups) != 0 {
		t.Fatalf("completed upload still listed: %+v", ups)
	}
	if _, err := mp.UploadPart(ctx, "mp/obj", id, 1, strings.NewReader("x"), 1, nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("upload to a completed upload: %v, want ErrNotFound", err)
	}
}

func testMultipartRules(t *testing.T, caps bucket.Composer) {
	b := caps.Backend
	mp := multipart(t, caps)
	ctx := context.Background()
	id := create(t, mp, "mp/small")
	a, err := mp.UploadPart(ctx, "mp/small", id, 1, bytes.NewReader([]byte("tiny")), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mp.UploadPart(ctx, "mp/small", id, 2, bytes.NewReader([]byte("end")), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, parts := range [][]bucket.Part{
		{a, c},                               // a non-last part under MinPartSize
		{c, a},                               // descending
		{a, a},                               // repeated
		{{Number: 3, ETag: c.ETag, Size: 3}}, // never uploaded
		{{Number: 2, ETag: a.ETag, Size: 3}}, // another part's ETag
		{},
	} {
		if _, err := mp.CompleteMultipart(ctx, "mp/small", id, parts); err == nil {
			_ = b.Delete(ctx, "mp/small")
			t.Fatalf("completed with parts %+v", parts)
		}
		mustNotExist(t, b, "mp/small", "a failed completion")
	}
	if ups, err := mp.ListMultipart(ctx, "mp/small"); err != nil || len(ups) != 1 {
		t.Fatalf("a failed completion ended the upload: %+v, %v", ups, err)
	}
	// The upload still completes after the failures.
	if obj, err := mp.CompleteMultipart(ctx, "mp/small", id, []bucket.Part{c}); err != nil || obj.Size != 3 {
		t.Fatalf("complete with the last part alone = %+v, %v", obj, err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "mp/small") })
	if got, _ := get(t, b, "mp/small", nil); string(got) != "end" {
		t.Fatalf("completed %q", got)
	}
	// Another key's upload id is not this key's upload.
	id2 := create(t, mp, "mp/mine")
	if _, err := mp.UploadPart(ctx, "mp/theirs", id2, 1, strings.NewReader("x"), 1, nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("upload part under another key: %v, want ErrNotFound", err)
	}
}

func testMultipartAbort(t *testing.T, caps bucket.Composer) {
	b := caps.Backend
	mp := multipart(t, caps)
	ctx := context.Background()
	id := create(t, mp, "mp/aborted")
	for n := 1; n <= 2; n++ {
		if _, err := mp.UploadPart(ctx, "mp/aborted", id, n, bytes.NewReader(random(1000)), 1000, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := mp.AbortMultipart(ctx, "mp/aborted", id); err != nil {
		t.Fatal(err)
	}
	if ups, err := mp.ListMultipart(ctx, ""); err != nil || len(ups) != 0 {
		t.Fatalf("aborted upload still listed: %+v, %v", ups, err)
	}
	mustNotExist(t, b, "mp/aborted", "aborted")
	if _, err := mp.UploadPart(ctx, "mp/aborted", id, 3, strings.NewReader("x"), 1, nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("upload part after abort: %v, want ErrNotFound", err)
	}
	if _, err := mp.CompleteMultipart(ctx, "mp/aborted", id, []bucket.Part{{Number: 1, ETag: "x", Size: 1}}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("complete after abort: %v, want ErrNotFound", err)
	}
	if err := mp.AbortMultipart(ctx, "mp/aborted", id); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	for _, unknown := range []string{hex.EncodeToString(random(16)), "not-an-upload-id"} {
		if err := mp.AbortMultipart(ctx, "mp/never", unknown); err != nil {
			t.Fatalf("abort of unknown upload %q: %v", unknown, err)
		}
	}
}

// Parts copied from stored objects and parts uploaded mix in one upload,
// and the object is their bytes in part order.
func testCopyPart(t *testing.T, caps bucket.Composer) {
	b, mp, cp := caps.Backend, caps.Multipart, caps.PartCopier
	if cp == nil {
		t.Skip("backend has no part copier")
	}
	ctx := context.Background()
	src := make([]byte, bucket.MinPartSize+10)
	for i := range src {
		src[i] = byte(i * 7)
	}
	put(t, b, "copy/src", src)
	t.Cleanup(func() { _ = b.Delete(ctx, "copy/src") })
	id, err := mp.CreateMultipart(ctx, "copy/dst", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.AbortMultipart(ctx, "copy/dst", id); _ = b.Delete(ctx, "copy/dst") })
	p1, err := cp.CopyPart(ctx, "copy/dst", id, 1, "copy/src", bucket.Range{Offset: 0, Length: bucket.MinPartSize})
	if err != nil {
		t.Fatal(err)
	}
	mid := bytes.Repeat([]byte("m"), int(bucket.MinPartSize))
	p2, err := mp.UploadPart(ctx, "copy/dst", id, 2, bytes.NewReader(mid), int64(len(mid)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p3, err := cp.CopyPart(ctx, "copy/dst", id, 3, "copy/src", bucket.Range{Offset: bucket.MinPartSize, Length: 10})
	if err != nil {
		t.Fatal(err)
	}
	if p1.Size != bucket.MinPartSize || p3.Size != 10 || p1.ETag == "" {
		t.Fatalf("copied parts %+v %+v", p1, p3)
	}
	if _, err := mp.CompleteMultipart(ctx, "copy/dst", id, []bucket.Part{p1, p2, p3}); err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte{}, src[:bucket.MinPartSize]...), mid...), src[bucket.MinPartSize:]...)
	if got, _ := get(t, b, "copy/dst", nil); !bytes.Equal(got, want) {
		t.Fatalf("the joined object (%d bytes) is not its parts' bytes (%d)", len(got), len(want))
	}
	if _, err := cp.CopyPart(ctx, "copy/dst", id, 1, "copy/none", bucket.Range{Length: 1}); err == nil {
		t.Fatal("a part copied from a missing object")
	}
}

// Parallel parts land at their offsets in any order, into a staging file
// that only an offset-0 write creates; the key is checked before any byte.
func testStagingAt(t *testing.T, caps bucket.Composer) {
	b, st := caps.Backend, caps.Staging
	if st == nil {
		t.Skip("backend has no staging capability")
	}
	ctx := context.Background()
	id := "00112233445566778899aabbccddeeff"
	if err := st.StageWriteAt(ctx, id, 4, strings.NewReader("ef"), 2); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("write at 4 with no staging file = %v, want ErrNotFound", err)
	}
	if err := st.StageWrite(ctx, id, 0, strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.StageDiscard(ctx, id) })
	for _, p := range []struct {
		off  int64
		data string
	}{{4, "ef"}, {0, "ab"}, {2, "cX"}, {2, "cd"}} { // out of order, one rewritten
		if err := st.StageWriteAt(ctx, id, p.off, strings.NewReader(p.data), 2); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.StageWriteAt(ctx, id, 6, strings.NewReader("g"), 2); err == nil {
		t.Fatal("short write at accepted")
	}
	if _, err := st.StageCommit(ctx, id, "at/obj", 6, bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "at/obj") })
	if got, _ := get(t, b, "at/obj", nil); string(got) != "abcdef" {
		t.Fatalf("committed %q, want abcdef", got)
	}
	for key, want := range map[string]error{"at/obj/under": bucket.ErrKeyConflict, "at": bucket.ErrKeyConflict,
		"at/new/deep": nil, "other": nil} {
		if err := st.StageCheck(ctx, key); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("StageCheck(%s) = %v, want %v", key, err, want)
		}
	}
}

func testStaging(t *testing.T, caps bucket.Composer) {
	b := caps.Backend
	st := caps.Staging
	if st == nil {
		t.Skip("backend has no staging capability")
	}
	ctx := context.Background()
	id := "0123456789abcdef0123456789abcdef"
	if err := st.StageWrite(ctx, id, 0, strings.NewReader("hello "), 6); err != nil {
		t.Fatal(err)
	}
	// A retried chunk with a dropped connection, then the whole retry.
	if err := st.StageWrite(ctx, id, 6, strings.NewReader("wor"), 5); err == nil {
		t.Fatal("short stage write accepted")
	}
	if err := st.StageWrite(ctx, id, 6, strings.NewReader("world"), 5); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, b, "staged/obj", "staged bytes before commit")
	obj, err := st.StageCommit(ctx, id, "staged/obj", 11, bucket.PutOptions{})
	if err != nil || obj.Size != 11 {
		t.Fatalf("commit = %+v, %v", obj, err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "staged/obj") })
	if got, _ := get(t, b, "staged/obj", nil); string(got) != "hello world" {
		t.Fatalf("committed %q", got)
	}
	// A repeated commit after success reports the object instead of failing.
	if again, err := st.StageCommit(ctx, id, "staged/obj", 11, bucket.PutOptions{}); err != nil || again.Size != 11 || again.ETag != obj.ETag {
		t.Fatalf("repeat commit = %+v, %v; want %+v", again, err, obj)
	}
	// But not once the key holds another object of the same size.
	put(t, b, "staged/obj", []byte("HELLO WORLD"))
	if got, err := st.StageCommit(ctx, id, "staged/obj", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("repeat commit after the object was replaced = %+v, %v; want ErrNotFound", got, err)
	}
	if err := st.StageDiscard(ctx, id); err != nil {
		t.Fatalf("discard of a committed stage: %v", err)
	}
	// A stage that never existed does not adopt an object of its size.
	other := "fedcba9876543210fedcba9876543210"
	put(t, b, "staged/older", []byte("older bytes"))
	if got, err := st.StageCommit(ctx, other, "staged/older", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit of an unknown stage onto a same-size object = %+v, %v; want ErrNotFound", got, err)
	}
	// Only offset 0 creates a staging file: later offsets need the bytes before them.
	if err := st.StageWrite(ctx, other, 5, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stage write at 5 with no staging file = %v, want ErrNotFound", err)
	}
	if err := st.StageWrite(ctx, other, 0, strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if err := st.StageWrite(ctx, other, 4, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stage write at 4 into 3 staged bytes = %v, want ErrNotFound", err)
	}
	if _, err := st.StageCommit(ctx, other, "staged/short", 4, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit of 4 bytes from 3 staged = %v, want ErrNotFound", err)
	}
	mustNotExist(t, b, "staged/short", "a commit with bytes missing")
	if err := st.StageWrite(ctx, other, 3, strings.NewReader("d"), 1); err != nil {
		t.Fatalf("stage write at the end of the staged bytes: %v", err)
	}
	if err := st.StageDiscard(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := st.StageWrite(ctx, other, 4, strings.NewReader("e"), 1); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stage write at 4 after discard = %v, want ErrNotFound", err)
	}
	if _, err := st.StageCommit(ctx, other, "staged/short", 5, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit after a discard and a refused write = %v, want ErrNotFound", err)
	}
	if err := st.StageWrite(ctx, id, 0, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := st.StageDiscard(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StageCommit(ctx, id, "staged/gone", 1, bucket.PutOptions{}); err == nil {
		t.Fatal("committed a discarded stage")
	}
}

func testPing(t *testing.T, c bucket.Composer) {
	p := c.Pinger
	if p == nil {
		t.Skip("backend has no ping")
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
