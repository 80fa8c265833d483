package testsvc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/metastore/boltstore"
)

// Embedded returns the embedded default's stores, bbolt and the
// filesystem, in a temporary directory closed when the test ends.
func Embedded(t testing.TB) (*boltstore.Store, *fsblob.Backend) {
	t.Helper()
	return EmbeddedIn(t, t.TempDir())
}

// EmbeddedIn is Embedded in dir, laid out as ferryd's data_dir: meta.db,
// and blobs/ (with the sessions' staging files under blobs/staging).
func EmbeddedIn(t testing.TB, dir string) (*boltstore.Store, *fsblob.Backend) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	return store, blobs
}

// FastDir is a temporary directory on tmpfs (/dev/shm) where there is one
// and FERRY_FAULTS_DISK is not set, removed when the test ends. The fault
// sweeps test what a failed call leaves behind, not fsync, and bbolt's two
// fsyncs per write would otherwise make up most of their time.
func FastDir(t testing.TB) string {
	t.Helper()
	if os.Getenv("FERRY_FAULTS_DISK") == "" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if dir, err := os.MkdirTemp("/dev/shm", "ferry-test-"); err == nil {
				t.Cleanup(func() { os.RemoveAll(dir) })
				return dir
			}
		}
	}
	return t.TempDir()
}
