package fsblob

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) bucket.Backend {
		b, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// A symlink planted inside the root that points outside is never followed,
// for reading or writing, and no key reaches outside.
func TestNoEscape(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := os.Symlink(outside, filepath.Join(dir, "objects", "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := b.Get(ctx, "link/secret", nil); err == nil {
		t.Fatal("read through a symlink that leaves the root")
	}
	if _, err := b.Put(ctx, "link/planted", strings.NewReader("x"), 1, bucket.PutOptions{}); err == nil {
		t.Fatal("wrote through a symlink that leaves the root")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a file appeared outside the root")
	}
	for _, key := range []string{"../escape", "/etc/passwd", "a/../../escape", ""} {
		if _, err := b.Put(ctx, key, strings.NewReader("x"), 1, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, id := range []string{"../x", "ABC", "a/b"} {
		if err := b.StageWrite(ctx, id, 0, strings.NewReader("x"), 1); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Errorf("StageWrite(%q) = %v, want ErrInvalidKey", id, err)
		}
	}
}

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	dir := t.TempDir()
	b, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := b.Put(ctx, "a/b/c", strings.NewReader("x"), 1, bucket.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty directories left behind: %v", err)
	}
}
