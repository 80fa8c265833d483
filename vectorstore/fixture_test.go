package vectorstore

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// fixture is the vector stores over real OpenAI files, wired as ferryd
// wires them: the files' registry announces deletions to the stores.
type fixture struct {
	svc   *Service
	ai    *openai.Service
	files *registry.Registry
	blobs bucket.Backend
	store metastore.Store
	clock time.Time
}

func newFixture(t testing.TB, store metastore.Store, blobs bucket.Backend) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	places := registry.NewResolver(store, bucket.Compose(blobs), registry.Locations{})
	files := registry.New(store, places)
	sessions, err := session.New(store, places, files, session.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{files: files, blobs: blobs, store: store, clock: time.Now()}
	now := func() time.Time { return f.clock }
	f.ai = openai.New(sessions, files, store, openai.Config{Now: now}, log)
	f.svc = New(f.ai, store, Config{}, log)
	f.svc.now = now
	files.Subscribe(f.svc.OnFileEvent)
	return f
}

// backends are the stores every service test runs on.
var backends = []struct {
	name string
	open func(testing.TB) (metastore.Store, bucket.Backend)
}{
	{"embedded", func(t testing.TB) (metastore.Store, bucket.Backend) {
		store, blobs := testsvc.Embedded(t)
		return store, blobs
	}},
	{"redis+s3", func(t testing.TB) (metastore.Store, bucket.Backend) {
		rc, prefix := testsvc.Redis(t)
		client, bkt := testsvc.S3(t)
		return redisstore.New(rc, prefix), s3blob.New(client, bkt, "")
	}},
}

func both(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			store, blobs := be.open(t)
			fn(t, newFixture(t, store, blobs))
		})
	}
}
