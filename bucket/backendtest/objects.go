package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
)

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
