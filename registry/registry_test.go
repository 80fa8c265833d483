package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
)

func newRegistry(t *testing.T) *Registry {
	t.Helper()
	store, blobs := testsvc.Embedded(t)
	return New(store, NewResolver(store, bucket.Compose(blobs), Locations{}))
}

func ids(files []File) string {
	var out []string
	for _, f := range files {
		out = append(out, f.Key)
	}
	return strings.Join(out, ",")
}

// Ids sort in creation order, and paging by id with a filter returns each
// match once, in both directions.
func TestListByIDPagesAndFilters(t *testing.T) {
	r, ctx := newRegistry(t), context.Background()
	base := time.Now()
	for i := range 9 {
		f, err := r.Publish(ctx, File{Bucket: "b", Key: fmt.Sprintf("k%d", i), CreatedAt: base.Add(time.Duration(i) * time.Millisecond),
			Attrs: map[string]string{"even": fmt.Sprint(i%2 == 0)}})
		if err != nil || !strings.HasPrefix(f.ID, "file-") || len(f.ID) != 37 {
			t.Fatalf("publish %d = %+v, %v", i, f, err)
		}
	}
	even := func(f File) bool { return f.Attrs["even"] == "true" }
	for _, desc := range []bool{false, true} {
		var got []File
		after := ""
		for {
			page, more, err := r.ListByID(ctx, "b", IDQuery{After: after, Limit: 2, Desc: desc, Keep: even})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if !more {
				break
			}
			if len(page) != 2 {
				t.Fatalf("a page of %d with more=true", len(page))
			}
			after = page[len(page)-1].ID
		}
		want := "k0,k2,k4,k6,k8"
		if desc {
			want = "k8,k6,k4,k2,k0"
		}
		if ids(got) != want {
			t.Fatalf("desc=%v paged %s, want %s", desc, ids(got), want)
		}
	}
}

// Replacing a key retires its old id; deleting removes the id and, with the
// last file, the bucket.
func TestReplaceAndDeleteKeepIdsExact(t *testing.T) {
	r, ctx := newRegistry(t), context.Background()
	old, err := r.Publish(ctx, File{Bucket: "b", Key: "doc", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	repl, err := r.Publish(ctx, File{Bucket: "b", Key: "doc", CreatedAt: time.Now().Add(time.Millisecond)})
	if err != nil || repl.ID == old.ID {
		t.Fatalf("replacement = %+v, %v", repl, err)
	}
	if _, err := r.ByID(ctx, "b", old.ID); !errcode.Is(err, ErrFileNotFound) {
		t.Fatalf("old id still resolves: %v", err)
	}
	if all, _, _ := r.ListByID(ctx, "b", IDQuery{Limit: 10}); len(all) != 1 {
		t.Fatalf("ids listed after replace: %d, want 1", len(all))
	}
	if _, err := r.Delete(ctx, "b", "doc"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ByID(ctx, "b", repl.ID); !errcode.Is(err, ErrFileNotFound) {
		t.Fatalf("deleted id still resolves: %v", err)
	}
	if page, err := r.Buckets(ctx, "", 10); err != nil || len(page.Data) != 0 {
		t.Fatalf("empty bucket still listed: %v %v", page.Data, err)
	}
	if _, err := r.List(ctx, "b", "", "", 10); !errcode.Is(err, ErrBucketNotFound) {
		t.Fatalf("listing an emptied bucket: %v", err)
	}
}

// Replacing a key under a new id and deleting announce the id that is
// gone, after the index no longer has it; republishing the same id (a
// retried publish, a location refresh) announces nothing.
func TestEventsAnnounceGoneIDs(t *testing.T) {
	r, ctx := newRegistry(t), context.Background()
	var got []string
	r.Subscribe(func(ctx context.Context, e Event) {
		if _, err := r.ByID(ctx, e.File.Bucket, e.File.ID); !errcode.Is(err, ErrFileNotFound) {
			t.Errorf("%s event for %s while it is still indexed: %v", e.Kind, e.File.ID, err)
		}
		got = append(got, fmt.Sprintf("%s %s %s", e.Kind, e.File.ID, e.Replacement.ID))
	})
	old, err := r.Publish(ctx, File{Bucket: "b", Key: "doc", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, old); err != nil { // same id again
		t.Fatal(err)
	}
	repl, err := r.Publish(ctx, File{Bucket: "b", Key: "doc", CreatedAt: time.Now().Add(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Delete(ctx, "b", "doc"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Delete(ctx, "b", "doc"); !errcode.Is(err, ErrFileNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	want := []string{"replaced " + old.ID + " " + repl.ID, "removed " + repl.ID + " "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events = %q, want %q", got, want)
	}
}
