package migrate_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/boltstore"
	"github.com/ferryhq/ferry/metastore/migrate"
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// The layout-0 bbolt file, migrated, serves everything it held.
func TestMigrateBolt(t *testing.T) {
	dir := copyFixture(t, "bolt")
	store, err := boltstore.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	checkMigrated(t, store, dir, nil)
}

// A migration that died midway, copying or deleting, is finished by the
// next run.
func TestMigrateAfterCrash(t *testing.T) {
	for _, c := range []struct {
		name       string
		puts, dels int
	}{{"copying", 3, -1}, {"deleting first", -1, 0}, {"deleting", -1, 5}} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyFixture(t, "bolt")
			store, err := boltstore.Open(filepath.Join(dir, "meta.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			checkMigrated(t, store, dir, func() {
				crashing := &crashStore{Store: store, puts: c.puts, dels: c.dels}
				if _, err := migrate.Run(t.Context(), crashing, slog.New(slog.DiscardHandler)); !errors.Is(err, errCrash) {
					t.Fatalf("crashing run: %v, want the crash", err)
				}
			})
		})
	}
}

// A layout-1 store needs no move to reach layout 3, only the version; a
// store from a newer ferryd is refused.
func TestMigrateVersions(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx, log := t.Context(), slog.New(slog.DiscardHandler)
	setLayout := func(v int) {
		t.Helper()
		if _, err := store.Put(ctx, "meta/layout", fmt.Appendf(nil, `{"version":%d}`, v), metastore.Cond{Version: metastore.AnyVersion}); err != nil {
			t.Fatal(err)
		}
	}
	setLayout(1)
	if err := store.IndexPut(ctx, "session/expiry", "0000000000000001/x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if moved, err := migrate.Run(ctx, store, log); err != nil || moved != 0 {
		t.Fatalf("layout 1: moved %d, %v; want 0, nil", moved, err)
	}
	rec, err := store.Get(ctx, "meta/layout")
	if err != nil || string(rec.Value) != fmt.Sprintf(`{"version":%d}`, migrate.Version) || migrate.Version != 3 {
		t.Fatalf("layout after migrating from 1: %s, %v", rec.Value, err)
	}
	if n, err := store.IndexLen(ctx, "session/expiry"); err != nil || n != 1 {
		t.Fatalf("session/expiry holds %d entries after migrating from 1, %v", n, err)
	}
	setLayout(migrate.Version + 1)
	if _, err := migrate.Run(ctx, store, log); err == nil || !strings.Contains(err.Error(), "newer than this ferryd") {
		t.Fatalf("a newer layout: %v, want a refusal", err)
	}
}

var errCrash = errors.New("crash")

// crashStore fails every IndexPut after puts of them, and every IndexDelete
// after dels (a negative count never fails).
type crashStore struct {
	metastore.Store
	puts, dels int
}

func (s *crashStore) IndexPut(ctx context.Context, index, member string, value []byte, emit ...[]byte) error {
	if s.puts == 0 {
		return errCrash
	}
	s.puts--
	return s.Store.IndexPut(ctx, index, member, value, emit...)
}

func (s *crashStore) IndexDelete(ctx context.Context, index, member string, emit ...[]byte) error {
	if s.dels == 0 {
		return errCrash
	}
	s.dels--
	return s.Store.IndexDelete(ctx, index, member, emit...)
}

// The layout-0 Redis keys, restored under the test's prefix, migrated,
// serve everything they held.
func TestMigrateRedis(t *testing.T) {
	dir := copyFixture(t, "redis")
	client, prefix := testsvc.Redis(t)
	var dump []dumped
	readJSON(t, filepath.Join(dir, "dump.json"), &dump)
	for _, d := range dump {
		payload, err := base64.StdEncoding.DecodeString(d.Dump)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Restore(t.Context(), prefix+d.Key, time.Duration(d.PTTL)*time.Millisecond, string(payload)).Err(); err != nil {
			t.Fatalf("RESTORE %s: %v", d.Key, err)
		}
	}
	checkMigrated(t, redisstore.New(client, prefix), dir, nil)
}

// copyFixture copies testdata/v0/<kind> to a temporary directory, so the
// test may write to it.
func copyFixture(t *testing.T, kind string) string {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "v0", kind))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readJSON(t *testing.T, path string, v any) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated migrates the fixture in dir, after crash (if set), and
// checks that today's services find everything in it.
func checkMigrated(t *testing.T, store metastore.Store, dir string, crash func()) {
	ctx := t.Context()
	var fx fixture
	readJSON(t, filepath.Join(dir, "fixture.json"), &fx)
	b, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	blobs := bucket.Compose(b)
	log := slog.New(slog.DiscardHandler)
	places := registry.NewResolver(store, blobs, registry.Locations{})
	files := registry.New(store, places)
	sessions, err := session.New(store, places, files, session.Config{TTL: fixtureTTL}, log)
	if err != nil {
		t.Fatal(err)
	}
	oai := openai.New(sessions, files, store, openai.Config{UploadTTL: fixtureTTL}, log)

	// Unmigrated, today's code sees none of it.
	if page, err := files.Buckets(ctx, "", 100); err != nil || len(page.Data) != 0 {
		t.Fatalf("before migrating: buckets %+v, %v; want none (is the fixture layout 0?)", page.Data, err)
	}

	if crash != nil {
		crash()
	}
	moved, err := migrate.Run(ctx, store, log)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if moved == 0 {
		t.Fatal("migrate moved nothing")
	}

	page, err := files.Buckets(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, bkt := range page.Data {
		names = append(names, bkt.Name)
		if bkt.Name == fx.Registered && !strings.HasPrefix(bkt.Location, "file://") {
			t.Errorf("registered bucket %s listed with location %q", bkt.Name, bkt.Location)
		}
	}
	if want := []string{"archive", "docs", "openai", "openai-uploads", "photos"}; !slices.Equal(names, want) {
		t.Errorf("buckets %v, want %v", names, want)
	}
	if reg, err := places.Registration(ctx, fx.Registered); err != nil || reg.Bucket != fx.Registered {
		t.Errorf("registration of %s: %+v, %v", fx.Registered, reg, err)
	}

	for path, id := range fx.Files {
		bkt, key, _ := strings.Cut(path, "/")
		f, err := files.Get(ctx, bkt, key)
		if err != nil || f.ID != id {
			t.Errorf("get %s: %+v, %v; want id %s", path, f, err, id)
		}
		if f, err := files.ByID(ctx, bkt, id); err != nil || f.Key != key {
			t.Errorf("by id %s: %+v, %v; want key %s", id, f, err, key)
		}
	}
	if got, _, err := files.ListByID(ctx, "photos", registry.IDQuery{Limit: 10}); err != nil || len(got) != 2 {
		t.Errorf("photos by id: %d files, %v; want 2", len(got), err)
	}
	if list, err := files.List(ctx, "photos", "", "", 10); err != nil || len(list.Data) != 2 {
		t.Errorf("photos: %d files, %v; want 2", len(list.Data), err)
	}

	// The session resumes at its offset and completes.
	info, err := sessions.Get(ctx, fx.Session)
	if err != nil || info.Offset != fx.SessionOffset || info.Size != fx.SessionSize {
		t.Fatalf("session: %+v, %v; want offset %d of %d", info, err, fx.SessionOffset, fx.SessionSize)
	}
	rest := "456789"
	_, done, err := sessions.Append(ctx, fx.Session, session.Chunk{Offset: info.Offset, Total: -1, Len: int64(len(rest)), Body: strings.NewReader(rest)})
	if err != nil || done == nil {
		t.Fatalf("append the rest: %v (file %v)", err, done)
	}
	if f, err := files.ByID(ctx, "docs", done.ID); err != nil || f.Bytes != fx.SessionSize {
		t.Errorf("completed session's file: %+v, %v", f, err)
	}
	// The purger's work list moved with the sessions.
	if n, err := store.IndexLen(ctx, "session/expiry"); err != nil || n == 0 {
		t.Errorf("session/expiry holds %d entries, %v; want the sessions'", n, err)
	}

	if fo, _, err := oai.GetFile(ctx, fx.OpenAIFile); err != nil || fo.Filename != "notes.txt" {
		t.Errorf("openai file: %+v, %v", fo, err)
	}
	if _, err := oai.AddPart(ctx, fx.Upload, strings.NewReader("56789")); err != nil {
		t.Errorf("openai upload part: %v", err)
	}

	// Nothing is left under the old names.
	for _, index := range []string{"buckets", "locations", "sessions/expiry", "files/photos", "fileids/photos", "files/openai", "fileids/openai"} {
		if n, err := store.IndexLen(ctx, index); err != nil || n != 0 {
			t.Errorf("old index %q holds %d entries, %v", index, n, err)
		}
	}

	// A second run is a no-op.
	if moved, err := migrate.Run(ctx, store, log); err != nil || moved != 0 {
		t.Errorf("second run: moved %d, %v; want 0, nil", moved, err)
	}
}
