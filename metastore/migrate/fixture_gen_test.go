package migrate_test

// The fixtures under testdata/v0 are metadata written by Ferry before the
// layout version existed (layout 0), through the real registry, session and
// openai services, so the migration is tested on what deployments hold.
// They were produced at commit 997f909 (the last layout-0 commit) by
//
//	git worktree add /tmp/ferry-v0 997f909
//	cp metastore/migrate/fixture_gen_test.go /tmp/ferry-v0/metastore/migrate/
//	cd /tmp/ferry-v0 && FERRY_GEN_FIXTURES=$PWD/testdata CI=1 scripts/test.sh -count=1 -run TestGenerateFixtures ./metastore/migrate/
//
// and the output directory copied to metastore/migrate/testdata/v0.
// Run at a later commit the same code would write the current layout,
// which is not what the fixtures are for.

import (
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/ferryhq/ferry/metastore/redisstore"
	"github.com/ferryhq/ferry/openai"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// fixtureTTL keeps the fixtures' session and upload alive for decades.
const fixtureTTL = 50 * 365 * 24 * time.Hour

// fixture is what the generator wrote, for the test to look for.
type fixture struct {
	Files         map[string]string `json:"files"` // "<bucket>/<key>" → file id
	Session       string            `json:"session"`
	SessionOffset int64             `json:"session_offset"`
	SessionSize   int64             `json:"session_size"`
	Registered    string            `json:"registered"` // bucket name
	OpenAIFile    string            `json:"openai_file"`
	Upload        string            `json:"upload"`
}

// dumped is one Redis key as DUMP wrote it, without the store's prefix.
type dumped struct {
	Key  string `json:"key"`
	PTTL int64  `json:"pttl_ms"` // 0: no expiry
	Dump string `json:"dump"`    // base64
}

func TestGenerateFixtures(t *testing.T) {
	out := os.Getenv("FERRY_GEN_FIXTURES")
	if out == "" {
		t.Skip("set FERRY_GEN_FIXTURES to a directory to regenerate the layout-0 fixtures")
	}
	ctx := t.Context()
	archive := filepath.Join(os.TempDir(), "ferry-fixture-archive")
	if err := os.MkdirAll(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(archive, "old.txt"), []byte("echo"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("bbolt", func(t *testing.T) {
		dir := filepath.Join(out, "bolt")
		blobs := openBlobs(t, dir)
		store, err := boltstore.Open(filepath.Join(dir, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		writeJSON(t, filepath.Join(dir, "fixture.json"), populate(ctx, t, store, blobs, archive))
	})
	t.Run("redis", func(t *testing.T) {
		dir := filepath.Join(out, "redis")
		client, prefix := testsvc.Redis(t)
		f := populate(ctx, t, redisstore.New(client, prefix), openBlobs(t, dir), archive)
		writeJSON(t, filepath.Join(dir, "fixture.json"), f)
		keys, err := client.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		var dump []dumped
		for _, k := range keys {
			payload, err := client.Dump(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			ttl, err := client.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			d := dumped{Key: strings.TrimPrefix(k, prefix), Dump: base64.StdEncoding.EncodeToString([]byte(payload))}
			if ttl > 0 {
				d.PTTL = ttl.Milliseconds()
			}
			dump = append(dump, d)
		}
		writeJSON(t, filepath.Join(dir, "dump.json"), dump)
	})
}

func openBlobs(t *testing.T, dir string) bucket.Composer {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := fsblob.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return bucket.Compose(b)
}

// populate writes a little of everything a deployment holds: files in two
// buckets, a registered bucket, a session half-way, an OpenAI file and an
// unfinished OpenAI Upload.
func populate(ctx context.Context, t *testing.T, store metastore.Store, blobs bucket.Composer, archive string) fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	places := registry.NewResolver(store, blobs, registry.Locations{Roots: []string{filepath.Dir(archive)}, OpenDir: func(dir string) (bucket.Composer, error) {
		b, err := fsblob.NewDir(dir)
		return bucket.Compose(b), err
	}})
	files := registry.New(store, places)
	sessions, err := session.New(store, places, files, session.Config{TTL: fixtureTTL}, log)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{Files: map[string]string{}}
	for _, o := range []struct{ bkt, key, body string }{
		{"photos", "a.jpg", "alpha"}, {"photos", "dir/b.jpg", "bravo"}, {"docs", "readme.txt", "charlie"},
	} {
		info, err := sessions.Create(ctx, o.bkt, o.key, "", int64(len(o.body)))
		if err != nil {
			t.Fatal(err)
		}
		_, file, err := sessions.Append(ctx, info.ID, session.Chunk{Offset: 0, Total: -1, Len: int64(len(o.body)), Body: strings.NewReader(o.body)})
		if err != nil || file == nil {
			t.Fatalf("append %s/%s: %v (file %v)", o.bkt, o.key, err, file)
		}
		f.Files[o.bkt+"/"+o.key] = file.ID
	}

	info, err := sessions.Create(ctx, "docs", "partial.bin", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err = sessions.Append(ctx, info.ID, session.Chunk{Offset: 0, Total: -1, Len: 4, Body: strings.NewReader("0123")})
	if err != nil {
		t.Fatal(err)
	}
	f.Session, f.SessionOffset, f.SessionSize = info.ID, info.Offset, info.Size

	if _, _, err := files.RegisterBucket(ctx, "archive", "file://"+archive); err != nil {
		t.Fatal(err)
	}
	f.Registered = "archive"

	oai := openai.New(sessions, files, store, openai.Config{UploadTTL: fixtureTTL}, log)
	st, err := oai.StageFile(ctx, "notes.txt", "text/plain", strings.NewReader("delta"))
	if err != nil {
		t.Fatal(err)
	}
	fo, err := oai.CommitFile(ctx, st, "assistants", 0)
	if err != nil {
		t.Fatal(err)
	}
	f.OpenAIFile = fo.ID
	up, err := oai.CreateUpload(ctx, openai.UploadParams{Filename: "big.bin", Purpose: "batch", Bytes: 10, MimeType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oai.AddPart(ctx, up.ID, strings.NewReader("01234")); err != nil {
		t.Fatal(err)
	}
	f.Upload = up.ID
	return f
}

func writeJSON(t *testing.T, path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
