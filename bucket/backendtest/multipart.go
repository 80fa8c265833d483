package backendtest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
)

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
