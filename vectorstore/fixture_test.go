package vectorstore

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
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

// both runs fn on every store the service runs on.
func both(t *testing.T, fn func(t *testing.T, f *fixture)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		fn(t, newFixture(t, s.Meta, s.Blobs))
	})
}
