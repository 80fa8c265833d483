package session

import (
	"context"
	"testing"
)

// List shows the uploads in progress, with their offsets, pages through
// them, and leaves completed sessions out.
func TestList(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		started, err := f.svc.Create(ctx, "b", "started", "", 6*MiB)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := appendBytes(t, f, started.ID, 0, randomBytes(MiB)); err != nil {
			t.Fatal(err)
		}
		fresh, err := f.svc.Create(ctx, "b", "fresh", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		upload(t, f, "done", randomBytes(10), 10)

		all, next, err := f.svc.List(ctx, "", 10)
		if err != nil || next != "" {
			t.Fatalf("List = %v, next %q", err, next)
		}
		offsets := map[string]int64{}
		for _, in := range all {
			offsets[in.Key] = in.Offset
		}
		if len(all) != 2 || offsets["started"] != MiB || offsets["fresh"] != 0 {
			t.Fatalf("List = %+v, want started at 1 MiB and fresh at 0", all)
		}
		var paged []string
		for cursor := ""; ; {
			page, next, err := f.svc.List(ctx, cursor, 1)
			if err != nil || len(page) > 1 {
				t.Fatalf("page after %q: %d sessions, %v", cursor, len(page), err)
			}
			for _, in := range page {
				paged = append(paged, in.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(paged) != 2 || paged[0] == paged[1] || (paged[0] != fresh.ID && paged[1] != fresh.ID) {
			t.Fatalf("paged = %v", paged)
		}
	})
}
