package httpapi

import (
	"testing"

	"github.com/ferryhq/ferry/internal/testsvc"
)

// The create answer carries every field the README lists, min_chunk_size
// too when it is 0 (the filesystem takes chunks of any size).
func TestCreateAnswerHasEveryField(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	srv := serveAPI(t, store, blobs, 0)
	a, _ := newSession(t, srv.URL, "b", "k", 10)
	got := a.json(t)
	for _, field := range []string{"id", "url", "offset", "size", "bucket", "key", "mime_type", "status", "expires_at", "min_chunk_size"} {
		if _, ok := got[field]; !ok {
			t.Errorf("the create answer lacks %s: %s", field, a.body)
		}
	}
	if got["min_chunk_size"] != float64(0) {
		t.Errorf("min_chunk_size on the filesystem = %v, want 0", got["min_chunk_size"])
	}
}
