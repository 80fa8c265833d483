package fsblob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) bucket.Composer { return bucket.Compose(open(t, t.TempDir())) })
}

func open(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func putString(t *testing.T, b *Backend, key, data string) {
	t.Helper()
	if _, err := b.Put(context.Background(), key, strings.NewReader(data), int64(len(data)), bucket.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// Symlinks planted inside the root are refused, never followed, for reading
// or writing, whether they point outside the root or inside it (into the
// staging area), and no key reaches outside.
func TestSymlinksAreRefused(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := open(t, dir)
	ctx := context.Background()
	putString(t, b, "real/file", "real")
	id, err := b.CreateMultipart(ctx, "x", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.AbortMultipart(ctx, "x", id)
	objects := filepath.Join(dir, objectsDir)
	for link, target := range map[string]string{
		"out":         outside,                           // a directory outside
		"stage":       filepath.Join("..", "staging"),    // a directory inside, relative
		"real/inside": filepath.Join(objects, "real"),    // a directory inside, absolute
		"secret":      filepath.Join(outside, "secret"),  // a file outside
		"alias":       filepath.Join("real", "file"),     // a file inside
		"dangling":    filepath.Join(outside, "missing"), // nothing
	} {
		if err := os.Symlink(target, filepath.Join(objects, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"out/secret", "stage/uploads/" + id + "/key", "real/inside/file", "secret", "alias", "dangling", "out/new", "dangling/new"} {
		if _, _, err := b.Get(ctx, key, nil); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Get(%s) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Head(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Head(%s) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Put(%s) = %v, want ErrInvalidKey", key, err)
		}
		if err := b.Delete(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Delete(%s) = %v, want ErrInvalidKey", key, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(got) != "secret" {
		t.Fatalf("outside file changed: %q %v", got, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("files appeared outside the root: %v", entries)
	}
	if fi, err := os.Lstat(filepath.Join(objects, "secret")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the planted link was replaced or removed: %v", err)
	}
	// Completing an upload whose key runs through a link is refused too.
	id2, err := b.CreateMultipart(ctx, "ok/then-linked", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.UploadPart(ctx, "ok/then-linked", id2, 1, strings.NewReader("x"), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(objects, "ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CompleteMultipart(ctx, "ok/then-linked", id2, []bucket.Part{p}); !errors.Is(err, bucket.ErrInvalidKey) {
		t.Fatalf("complete through a link = %v, want ErrInvalidKey", err)
	}
	_ = b.AbortMultipart(ctx, "ok/then-linked", id2)
	// Links are not objects.
	objs, _, err := b.List(ctx, "", "", 100)
	if err != nil || len(objs) != 1 || objs[0].Key != "real/file" {
		t.Fatalf("list = %+v, %v; want just real/file", objs, err)
	}
}

func TestIDsCannotBePaths(t *testing.T) {
	b := open(t, t.TempDir())
	ctx := context.Background()
	for _, id := range []string{"../x", "ABC", "a/b", "", "..", strings.Repeat("a", 65)} {
		if err := b.StageWrite(ctx, id, 0, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("StageWrite(%q) = %v, want ErrInvalidKey", id, err)
		}
		if _, err := b.UploadPart(ctx, "k", id, 1, strings.NewReader("x"), 1, nil); !errors.Is(err, bucket.ErrNotFound) {
			t.Errorf("UploadPart(%q) = %v, want ErrNotFound", id, err)
		}
		if err := b.AbortMultipart(ctx, "k", id); err != nil {
			t.Errorf("AbortMultipart(%q) = %v, want nil", id, err)
		}
	}
}

// Staging files never show as objects, and failures leave none behind.
func TestStagingIsInvisible(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	ctx := context.Background()
	if _, err := b.Put(ctx, "short", strings.NewReader("abc"), 10, bucket.PutOptions{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short put: %v", err)
	}
	putString(t, b, "a", "x")
	if _, err := b.Put(ctx, "a/b", strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrKeyConflict) {
		t.Fatalf("put under an object: %v, want ErrKeyConflict", err)
	}
	id, err := b.CreateMultipart(ctx, "mp", bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UploadPart(ctx, "mp", id, 1, strings.NewReader("ab"), 3, nil); err == nil {
		t.Fatal("short part accepted")
	}
	if _, err := b.UploadPart(ctx, "mp", id, 1, strings.NewReader("abc"), 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.StageWrite(ctx, "5e55", 0, strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	objs, _, err := b.List(ctx, "", "", 100)
	if err != nil || len(objs) != 1 || objs[0].Key != "a" {
		t.Fatalf("list = %+v, %v; want just a", objs, err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(tmp) != 0 {
		t.Fatalf("failed writes left %d staging files", len(tmp))
	}
	parts, _ := os.ReadDir(filepath.Join(dir, uploadsDir, id))
	if len(parts) != 2 { // key and the one part
		t.Fatalf("upload dir holds %v", parts)
	}
}

func TestNewSweepsStaleStagingFiles(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	stale, fresh := filepath.Join(dir, tmpDir, "stale"), filepath.Join(dir, tmpDir, "fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTmp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	b.Close()
	open(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale staging file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh staging file removed: %v", err)
	}
}

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	ctx := context.Background()
	putString(t, b, "a/b/c", "x")
	putString(t, b, "a/keep", "x")
	if err := b.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, objectsDir, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directory left behind: %v", err)
	}
	if err := b.Delete(ctx, "a/keep"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, objectsDir)); len(entries) != 0 {
		t.Fatalf("objects/ still holds %v", entries)
	}
	// An empty directory left by hand (or a crash) does not block its name.
	if err := os.MkdirAll(filepath.Join(dir, objectsDir, "d", "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "d/e", strings.NewReader("x"), 1, bucket.PutOptions{}); err != nil {
		t.Fatalf("put over an empty directory: %v", err)
	}
}

// Random keys over the bytes around '/' ('-' '.' '/' '0' '_' 'a') list in
// exactly the byte order of whole keys, with any prefix, cursor and limit.
func TestListIsByteOrder(t *testing.T) {
	b := open(t, t.TempDir())
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("-.0_a")
	word := func() string {
		w := make([]byte, 1+rng.IntN(3))
		for i := range w {
			w[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(w)
	}
	var keys []string
	for range 300 {
		segs := make([]string, 1+rng.IntN(3))
		for i := range segs {
			segs[i] = word()
		}
		key := strings.Join(segs, "/")
		if bucket.ValidateKey(key) != nil || slices.Contains(keys, key) {
			continue
		}
		_, err := b.Put(ctx, key, bytes.NewReader(nil), 0, bucket.PutOptions{})
		if errors.Is(err, bucket.ErrKeyConflict) {
			continue // "a" and "a/b" cannot both be files
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	slices.Sort(keys)
	// Paging through everything, page boundaries fall between a directory
	// "d" and the siblings ("d-x", "d.x") that sort before "d/".
	for limit := 1; limit <= 9; limit++ {
		var got []string
		for after := ""; ; {
			objs, more, err := b.List(ctx, "", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				got = append(got, o.Key)
			}
			if !more {
				break
			}
			after = objs[len(objs)-1].Key
		}
		if !slices.Equal(got, keys) {
			t.Fatalf("paging by %d listed\n%q\nwant\n%q", limit, got, keys)
		}
	}
	for range 200 {
		prefix, after := "", ""
		if rng.IntN(2) == 0 {
			prefix = keys[rng.IntN(len(keys))]
			prefix = prefix[:rng.IntN(len(prefix)+1)]
		}
		if rng.IntN(2) == 0 {
			after = keys[rng.IntN(len(keys))]
			after = after[:rng.IntN(len(after)+1)]
		}
		limit := 1 + rng.IntN(20)
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) && k > after {
				want = append(want, k)
			}
		}
		wantMore := len(want) > limit
		if wantMore {
			want = want[:limit]
		}
		objs, more, err := b.List(ctx, prefix, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.Key)
		}
		if !slices.Equal(got, want) || more != wantMore {
			t.Fatalf("List(%q, %q, %d) = %q more=%v\nwant %q more=%v", prefix, after, limit, got, more, want, wantMore)
		}
	}
}

func openDir(t *testing.T, dir string) *Backend {
	t.Helper()
	b, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestDirConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) bucket.Composer { return bucket.Compose(openDir(t, t.TempDir())) })
}

// NewDir serves files that were there before it, keeps its staging out of
// keys and listings, and refuses a missing directory.
func TestDirServesExistingFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"a.txt": "alpha", "sub/b.csv": "x,y"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := openDir(t, dir)
	ctx := context.Background()
	rc, info, err := b.Get(ctx, "sub/b.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "x,y" || info.Size != 3 {
		t.Fatalf("got %q (%d bytes), want x,y", got, info.Size)
	}
	putString(t, b, "new/c", "gamma")
	if data, err := os.ReadFile(filepath.Join(dir, "new", "c")); err != nil || string(data) != "gamma" {
		t.Fatalf("a Put lands in the directory itself: %q, %v", data, err)
	}
	objs, more, err := b.List(ctx, "", "", 10)
	if err != nil || more {
		t.Fatal(more, err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	if want := []string{"a.txt", "new/c", "sub/b.csv"}; !slices.Equal(keys, want) {
		t.Fatalf("listed %v, want %v (staging must not show)", keys, want)
	}
	for _, key := range []string{StagingDir + "/tmp/x", StagingDir} {
		if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("put %q: %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := NewDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("NewDir on a missing directory succeeded")
	}
	if _, err := NewDir(filepath.Join(dir, "a.txt")); err == nil {
		t.Error("NewDir on a file succeeded")
	}
}

// A symlink in a served directory, to a file or a directory outside it, is
// neither listed nor readable.
func TestDirRefusesSymlinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"file": filepath.Join(outside, "secret"), "dir": outside} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	b := openDir(t, dir)
	ctx := context.Background()
	for _, key := range []string{"file", "dir/secret"} {
		if _, _, err := b.Get(ctx, key, nil); err == nil {
			t.Errorf("get %q followed a symlink out of the directory", key)
		}
	}
	if objs, _, err := b.List(ctx, "", "", 10); err != nil || len(objs) != 0 {
		t.Errorf("listed %v, %v; want nothing", objs, err)
	}
}

// Paging a directory much larger than the page, with files and
// subdirectories mixed, gives every key once, in order.
func TestListPagesLargeDirectories(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 600 {
		name := fmt.Sprintf("f%04d", rand.IntN(100000))
		if i%50 == 0 {
			name = fmt.Sprintf("d%03d/x", i)
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if slices.Contains(want, name) {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	b := openDir(t, dir)
	for _, limit := range []int{1, 7, 100, 1000} {
		var got []string
		after := ""
		for {
			objs, more, err := b.List(context.Background(), "", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) > limit {
				t.Fatalf("limit %d: got a page of %d", limit, len(objs))
			}
			for _, o := range objs {
				got = append(got, o.Key)
			}
			if !more {
				break
			}
			after = objs[len(objs)-1].Key
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: listed %d keys, want %d in order", limit, len(got), len(want))
		}
	}
}

// BenchmarkListPageOfLargeDirectory lists one 1,000-key page from the middle
// of a flat directory of 200,000 files, as a registered directory may be.
// B/op shows the memory a page costs.
func BenchmarkListPageOfLargeDirectory(b *testing.B) {
	dir := b.TempDir()
	const n = 200000
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%07d", i)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	be, err := NewDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		objs, more, err := be.List(context.Background(), "", fmt.Sprintf("f%07d", n/2), 1000)
		if err != nil || len(objs) != 1000 || !more {
			b.Fatal(len(objs), more, err)
		}
	}
}

// A directory served from inside another one (nested registrations) keeps
// its staging out of the outer one's reach: the exploit listed,
// read, overwrote and deleted the inner upload's staging file through the
// outer backend.
func TestNestedDirCannotReachStaging(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	outer, inner := openDir(t, dir), openDir(t, filepath.Join(dir, "sub"))
	ctx := context.Background()
	id := "0123456789abcdef0123456789abcdef"
	if err := inner.StageWrite(ctx, id, 0, strings.NewReader("inner bytes"), 11); err != nil {
		t.Fatal(err)
	}
	staged := "sub/" + StagingDir + "/sessions/" + id
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(staged))); err != nil {
		t.Fatalf("the inner staging file is not where the test expects it: %v", err)
	}
	for _, key := range []string{staged, "sub/.FERRY-STAGING/sessions/" + id, "sub/.Ferry-Staging/sessions/" + id} {
		if _, _, err := outer.Get(ctx, key, nil); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("outer Get(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := outer.Head(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("outer Head(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := outer.Put(ctx, key, strings.NewReader("INJECTED!!!"), 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("outer Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := outer.Delete(ctx, key); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("outer Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
		if up, err := outer.CreateMultipart(ctx, key, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			_ = outer.AbortMultipart(ctx, key, up)
			t.Errorf("outer CreateMultipart(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	putString(t, outer, "sub/visible", "v")
	for _, prefix := range []string{"", "sub/", "sub/.ferry-staging"} {
		objs, _, err := outer.List(ctx, prefix, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Key != "sub/visible" {
				t.Errorf("outer List(%q) shows %q", prefix, o.Key)
			}
		}
	}
	obj, err := inner.StageCommit(ctx, id, "up.bin", 11, bucket.PutOptions{})
	if err != nil || obj.Size != 11 {
		t.Fatalf("inner commit = %+v, %v", obj, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "sub", "up.bin")); err != nil || string(data) != "inner bytes" {
		t.Fatalf("inner upload = %q, %v", data, err)
	}
}

// A write past offset 0 never creates the staging file: the issue's
// deleted staging file came back sparse, with NULs in front, and completed.
func TestStageWriteNeedsTheBytesBefore(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	ctx := context.Background()
	id := "5e55"
	file := filepath.Join(dir, sessionsDir, id)
	if err := b.StageWrite(ctx, id, 0, strings.NewReader("head"), 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	err := b.StageWrite(ctx, id, 4, strings.NewReader("tail"), 4)
	if !errors.Is(err, bucket.ErrNotFound) || !strings.Contains(err.Error(), "must start again") {
		t.Fatalf("write at 4 after the staging file was deleted = %v, want ErrNotFound saying to start again", err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused write created the staging file: %v", err)
	}
	if _, err := b.StageCommit(ctx, id, "k", 8, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit = %v, want ErrNotFound", err)
	}
	if _, err := b.Head(ctx, "k"); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("an object was published from lost bytes: %v", err)
	}
	// A staging file cut short is refused the same way, and left as it was.
	if err := b.StageWrite(ctx, id, 0, strings.NewReader("head"), 4); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, 2); err != nil {
		t.Fatal(err)
	}
	if err := b.StageWrite(ctx, id, 4, strings.NewReader("tail"), 4); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("write at 4 into 2 bytes = %v, want ErrNotFound", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "he" {
		t.Fatalf("the refused write changed the staging file to %q", data)
	}
}

// A retried StageCommit with no staging file left accepts the object its
// receipt identifies, and nothing else: not an older object of the same
// size, not a same-size replacement, not even one with the same ETag.
func TestStageCommitRetryIdentifiesTheObject(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	ctx := context.Background()
	receipt := func(id string) string { return filepath.Join(dir, sessionsDir, id+receiptSuffix) }

	// No receipt: an older object of the same size is not adopted.
	putString(t, b, "k", "old version")
	if got, err := b.StageCommit(ctx, "a1", "k", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit with no staging file and no receipt = %+v, %v; want ErrNotFound", got, err)
	}

	// The commit writes a receipt; a retry reports the same object.
	if err := b.StageWrite(ctx, "b2", 0, strings.NewReader("new version!!"), 13); err != nil {
		t.Fatal(err)
	}
	obj, err := b.StageCommit(ctx, "b2", "k", 11, bucket.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(receipt("b2")); err != nil {
		t.Fatalf("no receipt after the commit: %v", err)
	}
	again, err := b.StageCommit(ctx, "b2", "k", 11, bucket.PutOptions{})
	if err != nil || again != obj {
		t.Fatalf("retry = %+v, %v; want %+v", again, err, obj)
	}
	if _, err := b.StageCommit(ctx, "b2", "other", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("retry to another key = %v, want ErrNotFound", err)
	}
	if _, err := b.StageCommit(ctx, "b2", "k", 10, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("retry with another size = %v, want ErrNotFound", err)
	}
	// Receipts are not objects.
	if objs, _, err := b.List(ctx, "", "", 100); err != nil || len(objs) != 1 || objs[0].Key != "k" {
		t.Fatalf("list = %+v, %v; want just k", objs, err)
	}

	// Replaced by an object of the same size, even with the committed
	// object's modification time (so the same ETag): refused on the inode.
	putString(t, b, "k", "other bytes")
	mtime := obj.LastModified
	if err := os.Chtimes(filepath.Join(dir, objectsDir, "k"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if h, _ := b.Head(ctx, "k"); h.ETag != obj.ETag {
		t.Fatalf("the test needs the same ETag: %s vs %s", h.ETag, obj.ETag)
	}
	if got, err := b.StageCommit(ctx, "b2", "k", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("retry after a same-size, same-ETag replacement = %+v, %v; want ErrNotFound", got, err)
	}

	// A receipt naming another object (a mismatching one) is refused too.
	putString(t, b, "m", "0123456789a")
	if err := os.WriteFile(receipt("c3"), []byte(`{"key":"m","size":11,"etag":"b-1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := b.StageCommit(ctx, "c3", "m", 11, bucket.PutOptions{}); !errors.Is(err, bucket.ErrNotFound) {
		t.Fatalf("commit with a mismatching receipt = %+v, %v; want ErrNotFound", got, err)
	}

	// StageDiscard frees the receipt; then nothing is adopted.
	if err := b.StageDiscard(ctx, "b2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(receipt("b2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("receipt kept after discard: %v", err)
	}
}

// Receipts a crash orphaned are swept when the backend opens, fresh ones kept.
func TestNewSweepsStaleReceipts(t *testing.T) {
	dir := t.TempDir()
	b := open(t, dir)
	stale, fresh := filepath.Join(dir, sessionsDir, "aa"+receiptSuffix), filepath.Join(dir, sessionsDir, "bb"+receiptSuffix)
	session := filepath.Join(dir, sessionsDir, "cc")
	for _, p := range []string{stale, fresh, session} {
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleReceipt)
	for _, p := range []string{stale, session} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	open(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale receipt kept: %v", err)
	}
	for _, p := range []string{fresh, session} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
}
