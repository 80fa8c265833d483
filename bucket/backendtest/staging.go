package backendtest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
)

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
	id, other := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	checkStageCommit(t, b, st, id)
	checkUnknownStage(t, b, st, other)
	checkStageNeedsEarlierBytes(t, b, st, other)
	checkDiscardedStage(t, st, id)
}

// checkStageCommit stages an object as a retried upload would, commits it
// and commits it again.
func checkStageCommit(t *testing.T, b bucket.Backend, st bucket.Staging, id string) {
	ctx := context.Background()
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
}

// checkUnknownStage checks that neither a commit nor a write past offset
// 0 creates a stage.
func checkUnknownStage(t *testing.T, b bucket.Backend, st bucket.Staging, id string) {
	ctx := context.Background()
	// A stage that never existed does not adopt an object of its size.
	put(t, b, "staged/older", []byte("older bytes"))
	if got, err := st.StageCommit(ctx, id, "staged/older", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit of an unknown stage onto a same-size object = %+v, %v; want ErrNotFound", got, err)
	}
	// Only offset 0 creates a staging file: later offsets need the bytes before them.
	if err := st.StageWrite(ctx, id, 5, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stage write at 5 with no staging file = %v, want ErrNotFound", err)
	}
}

// checkStageNeedsEarlierBytes checks that a write or a commit that would
// leave a gap is refused, before and after a discard.
func checkStageNeedsEarlierBytes(t *testing.T, b bucket.Backend, st bucket.Staging, id string) {
	ctx := context.Background()
	if err := st.StageWrite(ctx, id, 0, strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if err := st.StageWrite(ctx, id, 4, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stage write at 4 into 3 staged bytes = %v, want ErrNotFound", err)
	}
	if _, err := st.StageCommit(ctx, id, "staged/short", 4, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit of 4 bytes from 3 staged = %v, want ErrNotFound", err)
	}
	mustNotExist(t, b, "staged/short", "a commit with bytes missing")
	if err := st.StageWrite(ctx, id, 3, strings.NewReader("d"), 1); err != nil {
		t.Fatalf("stage write at the end of the staged bytes: %v", err)
	}
	if err := st.StageDiscard(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := st.StageWrite(ctx, id, 4, strings.NewReader("e"), 1); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("stage write at 4 after discard = %v, want ErrNotFound", err)
	}
	if _, err := st.StageCommit(ctx, id, "staged/short", 5, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit after a discard and a refused write = %v, want ErrNotFound", err)
	}
}

// checkDiscardedStage checks that a discarded stage cannot be committed.
func checkDiscardedStage(t *testing.T, st bucket.Staging, id string) {
	ctx := context.Background()
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
