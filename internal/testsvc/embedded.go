package testsvc

import (
	"testing"

	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/metastore/boltstore"
)

// Embedded returns the embedded default's stores, bbolt and the
// filesystem, in a temporary directory closed when the test ends.
func Embedded(t testing.TB) (*boltstore.Store, *fsblob.Backend) {
	t.Helper()
	dir := t.TempDir()
	store, err := boltstore.Open(dir + "/meta.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	blobs, err := fsblob.New(dir + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	return store, blobs
}
