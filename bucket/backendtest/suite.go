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
	"io"
	"testing"

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

func testPing(t *testing.T, c bucket.Composer) {
	p := c.Pinger
	if p == nil {
		t.Skip("backend has no ping")
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
