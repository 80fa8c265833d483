package openai

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

type fixture struct {
	svc   *Service
	files *registry.Registry
	blobs bucket.Composer
	store metastore.Store
	clock time.Time
}

func newFixture(t testing.TB, store metastore.Store, blobs bucket.Composer) *fixture {
	t.Helper()
	places := registry.NewResolver(store, blobs, registry.Locations{})
	files := registry.New(store, places)
	sessions, err := session.New(store, places, files, session.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{files: files, blobs: blobs, store: store, clock: time.Now()}
	f.svc = New(sessions, files, store, Config{}, slog.New(slog.DiscardHandler))
	f.svc.now = func() time.Time { return f.clock }
	return f
}

// both runs fn on every store the service runs on.
func both(t *testing.T, fn func(t *testing.T, f *fixture)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		fn(t, newFixture(t, s.Meta, bucket.Compose(s.Blobs)))
	})
}

func TestExpiredFilesDisappearAndArePurged(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		st, err := f.svc.StageFile(ctx, "soon.txt", "", strings.NewReader("short-lived"))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := f.svc.CommitFile(ctx, st, "batch", 3600)
		if err != nil || obj.ExpiresAt == nil || *obj.ExpiresAt != obj.CreatedAt+3600 {
			t.Fatalf("commit = %+v, %v", obj, err)
		}
		keep, err := f.svc.StageFile(ctx, "keep.txt", "", strings.NewReader("stays"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.CommitFile(ctx, keep, "batch", 0); err != nil {
			t.Fatal(err)
		}
		if n, err := f.svc.Purge(ctx); err != nil || n != 0 {
			t.Fatalf("purge before expiry: %d %v", n, err)
		}
		f.clock = f.clock.Add(2 * time.Hour)
		if _, _, err := f.svc.GetFile(ctx, obj.ID); !errcode.Is(err, ErrFileNotFound) {
			t.Fatalf("expired file retrieved: %v", err)
		}
		page, err := f.svc.ListFiles(ctx, ListParams{Limit: 10})
		if err != nil || len(page.Data) != 1 || page.Data[0].Filename != "keep.txt" {
			t.Fatalf("list after expiry = %+v, %v", page, err)
		}
		if n, err := f.svc.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("purge = %d, %v; want 1", n, err)
		}
		if _, err := f.files.ByID(ctx, "openai", obj.ID); !errcode.Is(err, registry.ErrFileNotFound) {
			t.Fatalf("purged file still indexed: %v", err)
		}
		if p, err := f.files.List(ctx, "openai", "", "", 10); err != nil || len(p.Data) != 1 {
			t.Fatalf("storage after purge: %+v %v", p.Data, err)
		}
	})
}

func TestExpiredUploadsFreeTheirParts(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		up, err := f.svc.CreateUpload(ctx, UploadParams{Filename: "x", Purpose: "batch", Bytes: 6, MimeType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AddPart(ctx, up.ID, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
		f.clock = f.clock.Add(2 * time.Hour)
		if _, err := f.svc.AddPart(ctx, up.ID, strings.NewReader("def")); !errcode.Is(err, ErrUploadState) {
			t.Fatalf("part on an expired upload: %v", err)
		}
		if n, err := f.svc.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("purge = %d, %v", n, err)
		}
		noPartsLeft(t, f, up.ID)
		rec, _, err := f.svc.loadUpload(ctx, up.ID)
		if err != nil || rec.Status != "expired" {
			t.Fatalf("upload after expiry = %+v, %v", rec.Upload, err)
		}
	})
}

func TestValidation(t *testing.T) {
	for _, p := range Purposes {
		if ValidatePurpose(p) != nil {
			t.Errorf("purpose %q refused", p)
		}
	}
	if err := ValidatePurpose("fine_tune"); err == nil || !strings.Contains(err.Error(), "fine-tune") {
		t.Errorf("bad purpose: %v", err)
	}
	for _, tc := range []struct {
		anchor, secs string
		want         int64
		ok           bool
	}{
		{"", "", 0, true}, {"created_at", "3600", 3600, true}, {"created_at", "2592000", 2592000, true},
		{"created_at", "3599", 0, false}, {"created_at", "2592001", 0, false}, {"last_active_at", "3600", 0, false},
		{"created_at", "", 0, false}, {"", "3600", 0, false},
	} {
		got, err := ParseExpiresAfter(tc.anchor, tc.secs)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseExpiresAfter(%q, %q) = %d, %v", tc.anchor, tc.secs, got, err)
		}
	}
	for in, want := range map[string]string{"report final.pdf": "report_final.pdf", "../../etc/passwd": "passwd",
		`C:\x\y.txt`: "y.txt", "": "file", "..": "file", "ünï.txt": "_n_.txt", `a"b`: "a_b"} {
		if got := bucket.SafeName(in); got != want {
			t.Errorf("bucket.SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}
