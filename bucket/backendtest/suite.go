// Package backendtest is the one conformance suite every blob backend
// passes, the real S3 server's included. Each subtest cleans up after
// itself, and teardown fails if any object or multipart upload is left.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
)

// Run runs the suite against the backend newBackend returns.
func Run(t *testing.T, newBackend func(t *testing.T) bucket.Backend) {
	b := newBackend(t)
	t.Cleanup(func() { assertEmpty(t, b) })
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, bucket.Backend)
	}{
		{"PutGetHead", testPutGetHead},
		{"Ranges", testRanges},
		{"Missing", testMissing},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"ShortBody", testShortBody},
		{"Multipart", testMultipart},
		{"MultipartRules", testMultipartRules},
		{"Staging", testStaging},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func assertEmpty(t *testing.T, b bucket.Backend) {
	t.Helper()
	ctx := context.Background()
	objs, _, err := b.List(ctx, "", "", 100)
	if err != nil || len(objs) != 0 {
		t.Errorf("left behind: %d objects (%v): %+v", len(objs), err, objs)
	}
	if mp, ok := b.(bucket.Multipart); ok {
		ups, err := mp.ListMultipart(ctx, "")
		if err != nil || len(ups) != 0 {
			t.Errorf("left behind: %d multipart uploads (%v)", len(ups), err)
		}
	}
}

func random(n int) []byte {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return p
}

func put(t *testing.T, b bucket.Backend, key string, data []byte) bucket.ObjectInfo {
	t.Helper()
	info, err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), bucket.PutOptions{ContentType: "application/x-test"})
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

func testPutGetHead(t *testing.T, b bucket.Backend) {
	for _, n := range []int{0, 1, 3<<20 + 17} {
		key := fmt.Sprintf("pgh/nested/dir/%d.bin", n)
		data := random(n)
		info := put(t, b, key, data)
		if info.Size != int64(n) || info.ETag == "" {
			t.Fatalf("put info = %+v", info)
		}
		got, ginfo := get(t, b, key, nil)
		if sha256.Sum256(got) != sha256.Sum256(data) || ginfo.Size != int64(n) {
			t.Fatalf("%d bytes: round trip differs (got %d bytes, info %+v)", n, len(got), ginfo)
		}
		h, err := b.Head(context.Background(), key)
		if err != nil || h.Size != int64(n) || h.ETag != info.ETag || h.LastModified.IsZero() {
			t.Fatalf("head = %+v, %v (put said %+v)", h, err, info)
		}
	}
}

func testRanges(t *testing.T, b bucket.Backend) {
	data := random(1000)
	put(t, b, "ranges", data)
	for _, r := range []bucket.Range{{Offset: 0, Length: 1}, {Offset: 0, Length: 1000}, {Offset: 10, Length: 20}, {Offset: 999, Length: 1}, {Offset: 500, Length: -1}, {Offset: 990, Length: 100}} {
		got, info := get(t, b, "ranges", &r)
		end := int64(len(data))
		if r.Length >= 0 {
			end = min(r.Offset+r.Length, end)
		}
		if !bytes.Equal(got, data[r.Offset:end]) || info.Size != 1000 {
			t.Fatalf("range %+v: got %d bytes, info.Size %d", r, len(got), info.Size)
		}
	}
	if _, _, err := b.Get(context.Background(), "ranges", &bucket.Range{Offset: 1000, Length: 1}); !errors.Is(err, bucket.ErrInvalidRange) {
		t.Fatalf("range past the end: err = %v, want ErrInvalidRange", err)
	}
}

func testMissing(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	if _, _, err := b.Get(ctx, "missing/key", nil); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if _, err := b.Head(ctx, "missing/key"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("head missing: %v", err)
	}
	if err := b.Delete(ctx, "missing/key"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
}

func testOverwrite(t *testing.T, b bucket.Backend) {
	put(t, b, "over", []byte("first version"))
	put(t, b, "over", []byte("second"))
	if got, _ := get(t, b, "over", nil); string(got) != "second" {
		t.Fatalf("after overwrite: %q", got)
	}
	if err := b.Delete(context.Background(), "over"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(context.Background(), "over"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := b.Head(context.Background(), "over"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("deleted object still there: %v", err)
	}
}

func testList(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	// Byte order: '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0' (0x30).
	keys := []string{"l/a-b", "l/a.b", "l/a/b", "l/a/c/d", "l/a0", "l/b"}
	for i := 0; i < 19; i++ {
		keys = append(keys, fmt.Sprintf("l/p/%02d", i))
	}
	for _, k := range keys {
		put(t, b, k, []byte(k))
	}
	objs, more, err := b.List(ctx, "l/", "", 6)
	if err != nil || !more {
		t.Fatalf("list: more=%v err=%v", more, err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Key)
	}
	if want := keys[:6]; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("order = %v, want %v", got, want)
	}
	// Page through the "l/p/" prefix 4 at a time: every key once, more exact.
	var seen []string
	after := ""
	for {
		page, more, err := b.List(ctx, "l/p/", after, 4)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			seen = append(seen, o.Key)
			if o.Size != int64(len(o.Key)) {
				t.Fatalf("%s: size %d", o.Key, o.Size)
			}
		}
		if !more {
			if len(page) == 0 && after != "" && len(seen)%4 != 0 {
				t.Fatal("an empty last page after a short one")
			}
			break
		}
		if len(page) != 4 {
			t.Fatalf("page of %d with more=true", len(page))
		}
		after = page[len(page)-1].Key
	}
	if strings.Join(seen, ",") != strings.Join(keys[6:], ",") {
		t.Fatalf("paged %v, want %v", seen, keys[6:])
	}
	if objs, more, err := b.List(ctx, "l/p/18", "", 10); err != nil || more || len(objs) != 1 {
		t.Fatalf("exact-prefix list = %v more=%v err=%v", objs, more, err)
	}
	if objs, _, err := b.List(ctx, "nothing/", "", 10); err != nil || len(objs) != 0 {
		t.Fatalf("empty prefix list = %v %v", objs, err)
	}
}

// shortReader declares more than it has.
func testShortBody(t *testing.T, b bucket.Backend) {
	ctx := context.Background()
	_, err := b.Put(ctx, "short", bytes.NewReader(make([]byte, 10)), 20, bucket.PutOptions{})
	if err == nil {
		_ = b.Delete(ctx, "short")
		t.Fatal("a body shorter than its size was accepted")
	}
	if _, err := b.Head(ctx, "short"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("a short put left an object: %v", err)
	}
}

func testMultipart(t *testing.T, b bucket.Backend) {
	mp, ok := b.(bucket.Multipart)
	if !ok {
		t.Skip("backend has no multipart capability")
	}
	ctx := context.Background()
	p1, p2, p3 := random(int(bucket.MinPartSize)), random(int(bucket.MinPartSize)), []byte{42}
	id, err := mp.CreateMultipart(ctx, "mp/obj", bucket.PutOptions{ContentType: "application/x-test"})
	if err != nil {
		t.Fatal(err)
	}
	ups, err := mp.ListMultipart(ctx, "mp/")
	if err != nil || len(ups) != 1 || ups[0].Key != "mp/obj" || ups[0].UploadID != id {
		t.Fatalf("ListMultipart = %+v, %v", ups, err)
	}
	upload := func(n int, data []byte) bucket.Part {
		p, err := mp.UploadPart(ctx, "mp/obj", id, n, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		return p
	}
	// Out of order, and part 2 replaced by a re-upload.
	c := upload(3, p3)
	upload(2, random(int(bucket.MinPartSize)))
	b2 := upload(2, p2)
	a := upload(1, p1)
	if _, err := mp.UploadPart(ctx, "mp/obj", id, 4, bytes.NewReader([]byte{1}), 2); err == nil {
		t.Fatal("a short part was accepted")
	}
	obj, err := mp.CompleteMultipart(ctx, "mp/obj", id, []bucket.Part{a, b2, c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "mp/obj") })
	want := append(append(append([]byte{}, p1...), p2...), p3...)
	if got, _ := get(t, b, "mp/obj", nil); sha256.Sum256(got) != sha256.Sum256(want) || obj.Size != int64(len(want)) {
		t.Fatalf("assembled object differs (%d bytes, info %+v)", len(got), obj)
	}
	if ups, _ := mp.ListMultipart(ctx, ""); len(ups) != 0 {
		t.Fatalf("completed upload still listed: %+v", ups)
	}
}

func testMultipartRules(t *testing.T, b bucket.Backend) {
	mp, ok := b.(bucket.Multipart)
	if !ok {
		t.Skip("backend has no multipart capability")
	}
	ctx := context.Background()
	id, err := mp.CreateMultipart(ctx, "mp/small", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := mp.UploadPart(ctx, "mp/small", id, 1, bytes.NewReader([]byte("tiny")), 4)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mp.UploadPart(ctx, "mp/small", id, 2, bytes.NewReader([]byte("end")), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.CompleteMultipart(ctx, "mp/small", id, []bucket.Part{a, c}); err == nil {
		_ = b.Delete(ctx, "mp/small")
		t.Fatal("completed with a non-last part under MinPartSize")
	}
	if _, err := b.Head(ctx, "mp/small"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("a failed completion left an object: %v", err)
	}
	if err := mp.AbortMultipart(ctx, "mp/small", id); err != nil {
		t.Fatal(err)
	}
	if err := mp.AbortMultipart(ctx, "mp/small", id); err != nil {
		t.Fatalf("second abort: %v", err)
	}
	if ups, _ := mp.ListMultipart(ctx, ""); len(ups) != 0 {
		t.Fatalf("aborted upload still listed: %+v", ups)
	}
}

func testStaging(t *testing.T, b bucket.Backend) {
	st, ok := b.(bucket.Staging)
	if !ok {
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
	if _, err := b.Head(ctx, "staged/obj"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("staged bytes visible before commit: %v", err)
	}
	obj, err := st.StageCommit(ctx, id, "staged/obj", 11, bucket.PutOptions{})
	if err != nil || obj.Size != 11 {
		t.Fatalf("commit = %+v, %v", obj, err)
	}
	t.Cleanup(func() { _ = b.Delete(ctx, "staged/obj") })
	if got, _ := get(t, b, "staged/obj", nil); string(got) != "hello world" {
		t.Fatalf("committed %q", got)
	}
	// A repeated commit after success reports the object instead of failing.
	if obj, err := st.StageCommit(ctx, id, "staged/obj", 11, bucket.PutOptions{}); err != nil || obj.Size != 11 {
		t.Fatalf("repeat commit = %+v, %v", obj, err)
	}
	if err := st.StageDiscard(ctx, id); err != nil {
		t.Fatalf("discard of a committed stage: %v", err)
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
