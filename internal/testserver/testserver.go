// Package testserver runs Ferry's native API in-process for the client's
// tests, over the real stores internal/testsvc provides.
package testserver

import (
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/httpapi"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// Backends are the storage modes a test server runs on.
var Backends = []string{"embedded", "redis+s3"}

// Start serves the native API on backend ("embedded" or "redis+s3") until
// the test ends. file:// registration is allowed under roots.
func Start(t testing.TB, backend string, roots ...string) *httptest.Server {
	t.Helper()
	var store metastore.Store
	var blobs bucket.Backend
	switch backend {
	case "embedded":
		store, blobs = testsvc.Embedded(t)
	case "redis+s3":
		rc, prefix := testsvc.Redis(t)
		client, bkt := testsvc.S3(t)
		store, blobs = redisstore.New(rc, prefix), s3blob.New(client, bkt, "")
	default:
		t.Fatalf("testserver: unknown backend %q", backend)
	}
	comp := bucket.Compose(blobs)
	places := registry.NewResolver(store, comp, registry.Locations{Roots: roots, OpenDir: func(dir string) (bucket.Composer, error) {
		b, err := fsblob.NewDir(dir)
		if err != nil {
			return bucket.Composer{}, err
		}
		return bucket.Compose(b), nil
	}})
	files := registry.New(store, places)
	log := slog.New(slog.DiscardHandler)
	sessions, err := session.New(store, places, files, session.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: store, Blobs: comp, Sessions: sessions, Files: files, Logger: log}))
	t.Cleanup(srv.Close)
	return srv
}
