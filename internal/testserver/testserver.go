// Package testserver runs Ferry's native API in-process for the client's
// tests, over the real stores internal/testsvc provides.
package testserver

import (
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/httpapi"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// LinkSecret signs the servers' upload links and presigned downloads.
const LinkSecret = "testserver-link-secret-0123456789abcdef"

// Start serves the native API on backend ("embedded" or "redis+s3") until
// the test ends. file:// registration is allowed under roots.
func Start(t testing.TB, backend string, roots ...string) *httptest.Server {
	t.Helper()
	return Serve(t, testsvc.Open(t, backend, testsvc.StoreOptions{}), roots...)
}

// Serve serves the native API on s until the test ends; testsvc.EachStore
// hands a test every s.
func Serve(t testing.TB, s testsvc.Stores, roots ...string) *httptest.Server {
	t.Helper()
	return ServeKeys(t, s, nil, roots...)
}

// ServeKeys is Serve with API keys in force (nil: open).
func ServeKeys(t testing.TB, s testsvc.Stores, keys *auth.Keyring, roots ...string) *httptest.Server {
	t.Helper()
	store, comp := s.Meta, bucket.Compose(s.Blobs)
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
	links, err := auth.NewLinks(LinkSecret, "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: store, Blobs: comp, Sessions: sessions, Files: files, Logger: log, Keys: keys, Links: links}))
	t.Cleanup(srv.Close)
	return srv
}
