package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/session"
)

func (f *fixture) upload(t testing.TB, name, content string) string {
	t.Helper()
	ctx := context.Background()
	st, err := f.svc.StageFile(ctx, name, "", strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := f.svc.CommitFile(ctx, st, "assistants", 0)
	if err != nil {
		t.Fatal(err)
	}
	return obj.ID
}

// drain runs every due job, as a worker would.
func (f *fixture) drain(t testing.TB) int {
	t.Helper()
	n := 0
	for {
		ran, err := f.svc.ProcessNext(context.Background())
		if err != nil {
			t.Fatalf("process: %v", err)
		}
		if !ran {
			return n
		}
		n++
	}
}

func (f *fixture) newStore(t testing.TB, p StoreParams) VectorStore {
	t.Helper()
	vs, err := f.svc.CreateVectorStore(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func (f *fixture) counts(t testing.TB, vs string) (FileCounts, int64) {
	t.Helper()
	v, err := f.svc.GetVectorStore(context.Background(), vs)
	if err != nil {
		t.Fatal(err)
	}
	return v.FileCounts, v.UsageBytes
}

func wantCounts(t testing.TB, got FileCounts, inProgress, completed, failed, cancelled int64) {
	t.Helper()
	want := FileCounts{InProgress: inProgress, Completed: completed, Failed: failed, Cancelled: cancelled,
		Total: inProgress + completed + failed + cancelled}
	if got != want {
		t.Fatalf("file_counts = %+v, want %+v", got, want)
	}
}

// indexLens reports every index a store uses that still has members.
func leftovers(t testing.TB, store metastore.Store, vs string, files ...string) []string {
	t.Helper()
	ctx := context.Background()
	var left []string
	indexes := []string{filesIndexOf(storeKey(vs)), usageIndex(vs), batchesIndex(vs)}
	indexes = append(indexes, statusIndexes(storeKey(vs))...)
	for _, f := range files {
		indexes = append(indexes, byFileIndex(f))
		for _, key := range []string{fileKey(vs, f), chunksKey(vs, f)} {
			if _, err := store.Get(ctx, key); err == nil {
				left = append(left, "record "+key)
			}
		}
	}
	for _, index := range indexes {
		if n, err := store.IndexLen(ctx, index); err != nil || n > 0 {
			left = append(left, fmt.Sprintf("index %s (%d, %v)", index, n, err))
		}
	}
	return left
}

func TestVectorStoreLifecycle(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		name := "docs"
		vs := f.newStore(t, StoreParams{Name: &name, Metadata: map[string]string{"team": "a"}})
		if !strings.HasPrefix(vs.ID, "vs_") || vs.Object != "vector_store" || vs.Status != StatusCompleted || vs.Metadata["team"] != "a" {
			t.Fatalf("created %+v", vs)
		}
		fox := f.upload(t, "fox.txt", "The quick brown fox jumps over the lazy dog.")
		cat := f.upload(t, "cat.md", "# Cats\nA cat sleeps most of the day.")
		got, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: fox, Attributes: map[string]any{"kind": "animal", "legs": 4.0}})
		if err != nil || got.Status != StatusInProgress || got.ChunkingStrategy.Type != "static" || got.ChunkingStrategy.Static.MaxChunkSizeTokens != 800 {
			t.Fatalf("attach = %+v, %v", got, err)
		}
		if again, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: fox}); err != nil || again.CreatedAt != got.CreatedAt || again.Attributes["kind"] != "animal" {
			t.Fatalf("second attach = %+v, %v; want the existing file", again, err)
		}
		if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: cat, Chunking: Chunking{MaxTokens: 100, OverlapTokens: 50}}); err != nil {
			t.Fatal(err)
		}
		c, _ := f.counts(t, vs.ID)
		wantCounts(t, c, 2, 0, 0, 0)
		if v, _ := f.svc.GetVectorStore(ctx, vs.ID); v.Status != StatusInProgress {
			t.Fatalf("store with files in progress is %s", v.Status)
		}
		if n := f.drain(t); n != 2 {
			t.Fatalf("ran %d jobs, want 2", n)
		}
		c, usage := f.counts(t, vs.ID)
		wantCounts(t, c, 0, 2, 0, 0)
		foxFile, _ := f.svc.GetVectorStoreFile(ctx, vs.ID, fox)
		catFile, _ := f.svc.GetVectorStoreFile(ctx, vs.ID, cat)
		if foxFile.UsageBytes != int64(len("The quick brown fox jumps over the lazy dog.")) || usage != foxFile.UsageBytes+catFile.UsageBytes {
			t.Fatalf("usage: store %d, files %d + %d", usage, foxFile.UsageBytes, catFile.UsageBytes)
		}

		page, err := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"fox"}})
		if err != nil || len(page.Data) != 1 || page.Data[0].FileID != fox || page.Data[0].Filename != "fox.txt" ||
			page.Data[0].Attributes["kind"] != "animal" || page.Data[0].Score <= 0 || page.Data[0].Score > 1 {
			t.Fatalf("search = %+v, %v", page, err)
		}
		filter := json.RawMessage(`{"type":"eq","key":"kind","value":"plant"}`)
		if page, err := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"fox"}, Filters: filter}); err != nil || len(page.Data) != 0 {
			t.Fatalf("filtered search = %+v, %v", page, err)
		}
		content, err := f.svc.VectorStoreFileContent(ctx, vs.ID, fox)
		if err != nil || len(content.Data) != 1 || content.Data[0].Text != "The quick brown fox jumps over the lazy dog." {
			t.Fatalf("content = %+v, %v", content, err)
		}

		upd, err := f.svc.UpdateVectorStoreFile(ctx, vs.ID, fox, map[string]any{"kind": "plant"})
		if err != nil || upd.Attributes["kind"] != "plant" {
			t.Fatalf("update = %+v, %v", upd, err)
		}
		if page, _ := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"fox"}, Filters: filter}); len(page.Data) != 1 {
			t.Fatalf("search after the update does not see the new attributes: %+v", page)
		}

		if err := f.svc.DeleteVectorStoreFile(ctx, vs.ID, fox); err != nil {
			t.Fatal(err)
		}
		c, usage = f.counts(t, vs.ID)
		wantCounts(t, c, 0, 1, 0, 0)
		if usage != catFile.UsageBytes {
			t.Fatalf("usage after delete = %d, want %d", usage, catFile.UsageBytes)
		}
		if page, _ := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"fox"}}); len(page.Data) != 0 {
			t.Fatalf("a detached file is still found: %+v", page)
		}
		if _, _, err := f.svc.GetFile(ctx, fox); err != nil {
			t.Fatalf("detaching deleted the file itself: %v", err)
		}

		if err := f.svc.DeleteVectorStore(ctx, vs.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.GetVectorStore(ctx, vs.ID); !errcode.Is(err, ErrVectorStoreNotFound) {
			t.Fatalf("deleted store: %v", err)
		}
		if left := leftovers(t, f.svc.store, vs.ID, fox, cat); len(left) > 0 {
			t.Fatalf("deleting the store left %v", left)
		}
		if _, _, err := f.svc.GetFile(ctx, cat); err != nil {
			t.Fatalf("deleting the store deleted a file: %v", err)
		}
	})
}

// Parallel attaches and parallel workers: no count or byte is lost.
func TestConcurrentAttachesKeepCountsExact(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		vs := f.newStore(t, StoreParams{})
		const n = 16
		ids := make([]string, n)
		for i := range ids {
			ids[i] = f.upload(t, fmt.Sprintf("f%d.txt", i), strings.Repeat(fmt.Sprintf("word%d ", i), i+1))
		}
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Go(func() {
				if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id}); err != nil {
					t.Error(err)
				}
			})
		}
		for range 3 { // workers racing the attaches and each other
			wg.Go(func() {
				for range 40 {
					if _, err := f.svc.ProcessNext(ctx); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		f.drain(t)
		c, usage := f.counts(t, vs.ID)
		wantCounts(t, c, 0, n, 0, 0)
		var want int64
		page, err := f.svc.ListVectorStoreFiles(ctx, vs.ID, PageParams{Limit: 100})
		if err != nil || len(page.Data) != n {
			t.Fatalf("list = %d files, %v", len(page.Data), err)
		}
		for _, file := range page.Data {
			want += file.UsageBytes
		}
		if usage != want || want == 0 {
			t.Fatalf("usage_bytes = %d, files sum to %d", usage, want)
		}
		// Concurrent deletes and updates as well.
		for i, id := range ids {
			wg.Go(func() {
				var err error
				if i%2 == 0 {
					err = f.svc.DeleteVectorStoreFile(ctx, vs.ID, id)
				} else {
					_, err = f.svc.UpdateVectorStoreFile(ctx, vs.ID, id, map[string]any{"i": float64(i)})
				}
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		c, usage = f.counts(t, vs.ID)
		wantCounts(t, c, 0, n/2, 0, 0)
		want = 0
		page, _ = f.svc.ListVectorStoreFiles(ctx, vs.ID, PageParams{Limit: 100})
		for _, file := range page.Data {
			want += file.UsageBytes
			if file.Attributes["i"] == nil {
				t.Fatalf("an update was lost: %+v", file)
			}
		}
		if usage != want {
			t.Fatalf("usage_bytes after deletes = %d, files sum to %d", usage, want)
		}
	})
}

// A job left in the queue by a stopped instance is done by a new one.
func TestQueuedJobSurvivesRestart(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		vs := f.newStore(t, StoreParams{})
		id := f.upload(t, "a.txt", "persistent queues are good")
		if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id}); err != nil {
			t.Fatal(err)
		}
		// A fresh service over the same stores, as after a restart, with
		// a worker and a short poll: nothing wakes it but the queue.
		sessions, err := session.New(f.svc.store, f.blobs, f.files, session.Config{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		next := New(sessions, f.files, f.svc.store, Config{VectorWorkers: 1, VectorPollInterval: 20 * time.Millisecond}, slog.New(slog.DiscardHandler))
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { next.RunWorkers(wctx); close(done) }()
		defer func() { stop(); <-done }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			file, err := next.GetVectorStoreFile(ctx, vs.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			// The job leaves the queue just after the record is written.
			queued, _ := f.svc.store.IndexLen(ctx, jobsIndex)
			if file.Status == StatusCompleted && queued == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the restarted service never processed the queued job: %+v, %d jobs queued", file, queued)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Deleting the file or the store while a worker is between reading the
// file and storing its chunks: the worker's result is dropped, nothing is
// left behind, and the counts stay true.
func TestDeletionDuringProcessing(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for _, what := range []string{"file", "store", "reattach"} {
			vs := f.newStore(t, StoreParams{})
			id := f.upload(t, what+".txt", "text about "+what)
			if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id}); err != nil {
				t.Fatal(err)
			}
			rec, _, _ := f.svc.loadFile(ctx, vs.ID, id)
			res, err := f.svc.process(ctx, rec) // the worker has read and split the file
			if err != nil || len(res.texts) == 0 {
				t.Fatalf("process = %+v, %v", res, err)
			}
			switch what {
			case "file":
				err = f.svc.DeleteVectorStoreFile(ctx, vs.ID, id)
			case "store":
				err = f.svc.DeleteVectorStore(ctx, vs.ID)
			case "reattach":
				if err = f.svc.DeleteVectorStoreFile(ctx, vs.ID, id); err == nil {
					_, err = f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id})
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := f.svc.finish(ctx, rec, rec.Job, res); err != nil {
				t.Fatalf("%s: finish: %v", what, err)
			}
			f.drain(t) // the old job is gone from the queue; a re-attach's runs
			switch what {
			case "file", "store":
				if left := leftovers(t, f.svc.store, vs.ID, id); len(left) > 0 {
					t.Fatalf("%s deleted mid-processing left %v", what, left)
				}
			case "reattach":
				cur, _ := f.svc.GetVectorStoreFile(ctx, vs.ID, id)
				c, _ := f.counts(t, vs.ID)
				if cur.Status != StatusCompleted {
					t.Fatalf("re-attached file = %+v", cur)
				}
				wantCounts(t, c, 0, 1, 0, 0)
			}
		}
	})
}

func TestProcessingFailures(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.svc.cfg.VectorMaxFileSize = 64
		vs := f.newStore(t, StoreParams{})
		bin := f.upload(t, "blob.bin", "\x00\x01\x02binary\xff")
		big := f.upload(t, "big.txt", strings.Repeat("x ", 40))
		empty := f.upload(t, "empty.txt", "   ")
		for _, id := range []string{bin, big, empty} {
			if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id}); err != nil {
				t.Fatal(err)
			}
		}
		f.drain(t)
		for id, code := range map[string]string{bin: "unsupported_file", big: "invalid_file", empty: "invalid_file"} {
			file, _ := f.svc.GetVectorStoreFile(ctx, vs.ID, id)
			if file.Status != StatusFailed || file.LastError == nil || file.LastError.Code != code || file.LastError.Message == "" {
				t.Fatalf("file %s = %+v, want failed with %s", id, file, code)
			}
		}
		c, usage := f.counts(t, vs.ID)
		wantCounts(t, c, 0, 0, 3, 0)
		if usage != 0 {
			t.Fatalf("failed files use %d bytes", usage)
		}
		failed, err := f.svc.ListVectorStoreFiles(ctx, vs.ID, PageParams{Limit: 10, Filter: StatusFailed})
		if err != nil || len(failed.Data) != 3 {
			t.Fatalf("filter=failed = %+v, %v", failed, err)
		}
		if _, err := f.svc.VectorStoreFileContent(ctx, vs.ID, bin); !errcode.Is(err, errcode.ErrInvalidRequest) {
			t.Fatalf("content of a failed file: %v", err)
		}
	})
}

// An embeddings endpoint that keeps failing: the job is retried, later,
// then the file fails with server_error instead of staying in progress.
func TestEmbeddingsOutageFailsAfterRetries(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.Error(w, "model not loaded", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	store, blobs := testsvc.Embedded(t)
	f := newFixture(t, store, bucket.Compose(blobs))
	f.svc.embed = newEmbedder(EmbeddingsConfig{URL: srv.URL, Model: "m"})
	ctx := context.Background()
	vs := f.newStore(t, StoreParams{})
	id := f.upload(t, "a.txt", "some text")
	if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		ran, err := f.svc.ProcessNext(ctx)
		if !ran || (attempt < maxAttempts) != (err != nil) {
			t.Fatalf("attempt %d: ran %v, err %v", attempt, ran, err)
		}
		if ran, _ := f.svc.ProcessNext(ctx); ran {
			t.Fatalf("attempt %d was retried at once, not after a pause", attempt)
		}
		f.clock = f.clock.Add(time.Minute)
	}
	file, _ := f.svc.GetVectorStoreFile(ctx, vs.ID, id)
	if calls != maxAttempts || file.Status != StatusFailed || file.LastError.Code != "server_error" || !strings.Contains(file.LastError.Message, "503") {
		t.Fatalf("after %d calls the file is %+v", calls, file)
	}
}

func TestFileBatches(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		vs := f.newStore(t, StoreParams{})
		a, b := f.upload(t, "a.txt", "alpha text"), f.upload(t, "b.txt", "beta text")
		batch, err := f.svc.CreateFileBatch(ctx, vs.ID, []AttachParams{{FileID: a}, {FileID: b, Attributes: map[string]any{"x": true}}, {FileID: "file-nope"}, {FileID: a}})
		if err != nil || !strings.HasPrefix(batch.ID, "vsfb_") || batch.Status != StatusInProgress {
			t.Fatalf("batch = %+v, %v", batch, err)
		}
		wantCounts(t, batch.FileCounts, 2, 0, 1, 0)
		f.drain(t)
		got, err := f.svc.GetFileBatch(ctx, vs.ID, batch.ID)
		if err != nil || got.Status != StatusCompleted {
			t.Fatalf("batch after processing = %+v, %v", got, err)
		}
		wantCounts(t, got.FileCounts, 0, 2, 1, 0)
		files, err := f.svc.ListFileBatchFiles(ctx, vs.ID, batch.ID, PageParams{Limit: 2})
		if err != nil || len(files.Data) != 2 || !files.HasMore {
			t.Fatalf("batch files page = %+v, %v", files, err)
		}
		rest, err := f.svc.ListFileBatchFiles(ctx, vs.ID, batch.ID, PageParams{Limit: 2, After: files.Data[1].ID})
		if err != nil || len(rest.Data) != 1 || rest.HasMore {
			t.Fatalf("second page = %+v, %v", rest, err)
		}
		if _, err := f.svc.CancelFileBatch(ctx, vs.ID, batch.ID); !errcode.Is(err, errcode.ErrInvalidRequest) {
			t.Fatalf("cancelling a completed batch: %v", err)
		}

		// Cancelled before any worker got to it.
		c1, c2 := f.upload(t, "c1.txt", "gamma"), f.upload(t, "c2.txt", "delta")
		second, err := f.svc.CreateFileBatch(ctx, vs.ID, []AttachParams{{FileID: c1}, {FileID: c2}})
		if err != nil {
			t.Fatal(err)
		}
		cancelled, err := f.svc.CancelFileBatch(ctx, vs.ID, second.ID)
		if err != nil || cancelled.Status != StatusCancelled {
			t.Fatalf("cancel = %+v, %v", cancelled, err)
		}
		wantCounts(t, cancelled.FileCounts, 0, 0, 0, 2)
		if n := f.drain(t); n != 0 {
			t.Fatalf("%d jobs ran after the cancel", n)
		}
		c, _ := f.counts(t, vs.ID)
		wantCounts(t, c, 0, 2, 1, 2)
		if _, err := f.svc.GetFileBatch(ctx, vs.ID, "vsfb_nope"); !errcode.Is(err, ErrFileBatchNotFound) {
			t.Fatalf("unknown batch: %v", err)
		}
		if _, err := f.svc.CreateFileBatch(ctx, "vs_nope", []AttachParams{{FileID: a}}); !errcode.Is(err, ErrVectorStoreNotFound) {
			t.Fatalf("batch in an unknown store: %v", err)
		}
	})
}

// Deleting a file through the Files API removes it from every store.
func TestDeletedFileLeavesStores(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		one, two := f.newStore(t, StoreParams{}), f.newStore(t, StoreParams{})
		id := f.upload(t, "shared.txt", "shared words")
		for _, vs := range []string{one.ID, two.ID} {
			if _, err := f.svc.AttachFile(ctx, vs, AttachParams{FileID: id}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := f.svc.StageFile(ctx, "brief.txt", "", strings.NewReader("short-lived words"))
		if err != nil {
			t.Fatal(err)
		}
		brief, err := f.svc.CommitFile(ctx, st, "assistants", 3600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AttachFile(ctx, one.ID, AttachParams{FileID: brief.ID}); err != nil {
			t.Fatal(err)
		}
		f.drain(t)
		if err := f.svc.DeleteFile(ctx, id); err != nil {
			t.Fatal(err)
		}
		f.clock = f.clock.Add(2 * time.Hour) // and the other one expires
		if _, err := f.svc.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		for _, vs := range []string{one.ID, two.ID} {
			c, _ := f.counts(t, vs)
			wantCounts(t, c, 0, 0, 0, 0)
			if page, err := f.svc.SearchVectorStore(ctx, vs, SearchParams{Query: []string{"shared"}}); err != nil || len(page.Data) != 0 {
				t.Fatalf("search after the file was deleted = %+v, %v", page, err)
			}
		}
	})
}

func TestSearchValidation(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	f := newFixture(t, store, bucket.Compose(blobs))
	ctx := context.Background()
	vs := f.newStore(t, StoreParams{ExpiresAfter: &ExpiresAfter{Anchor: "last_active_at", Days: 1}})
	for _, tc := range []struct {
		p    SearchParams
		code errcode.Code
		want string
	}{
		{SearchParams{}, errcode.ErrInvalidRequest, "query"},
		{SearchParams{Query: []string{"x"}, MaxNumResults: 51}, errcode.ErrInvalidRequest, "max_num_results"},
		{SearchParams{Query: []string{"x"}, ScoreThreshold: 1.5}, errcode.ErrInvalidRequest, "score_threshold"},
		{SearchParams{Query: []string{"x"}, Ranker: "rrf"}, errcode.ErrInvalidRequest, "ranker"},
		{SearchParams{Query: []string{"x"}, Mode: "semantic"}, errcode.ErrInvalidRequest, "search_mode"},
		{SearchParams{Query: []string{"x"}, Filters: json.RawMessage(`{"type":"near","key":"a","value":1}`)}, errcode.ErrInvalidRequest, "near"},
		{SearchParams{Query: []string{"x"}, Mode: "vector"}, ErrEmbeddingsMissing, "FERRY_OPENAI_EMBEDDINGS_URL"},
		{SearchParams{Query: []string{"x"}, Mode: "hybrid"}, ErrEmbeddingsMissing, "FERRY_OPENAI_EMBEDDINGS_URL"},
	} {
		_, err := f.svc.SearchVectorStore(ctx, vs.ID, tc.p)
		if !errcode.Is(err, tc.code) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("search %+v: %v, want %s mentioning %q", tc.p, err, tc.code.Value, tc.want)
		}
	}
	if _, err := f.svc.SearchVectorStore(ctx, "vs_nope", SearchParams{Query: []string{"x"}}); !errcode.Is(err, ErrVectorStoreNotFound) {
		t.Errorf("unknown store: %v", err)
	}
	page, err := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"x"}})
	if err != nil || page.Data == nil || len(page.Data) != 0 || page.SearchQuery[0] != "x" {
		t.Fatalf("empty store = %+v, %v", page, err)
	}
	f.clock = f.clock.Add(49 * time.Hour)
	if v, _ := f.svc.GetVectorStore(ctx, vs.ID); v.Status != "expired" || v.ExpiresAt == nil || *v.ExpiresAt != v.LastActiveAt+86400 {
		t.Fatalf("store past its expiry = %+v", v)
	}
	if _, err := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"x"}}); !errcode.Is(err, ErrVectorStoreExpired) {
		t.Fatalf("search of an expired store: %v", err)
	}
}

func TestParseChunking(t *testing.T) {
	for raw, want := range map[string]string{
		``: "", `null`: "", `{"type":"auto"}`: "",
		`{"type":"static","static":{"max_chunk_size_tokens":100,"chunk_overlap_tokens":50}}`:  "",
		`{"type":"static","static":{"max_chunk_size_tokens":4096,"chunk_overlap_tokens":0}}`:  "",
		`{"type":"static","static":{"max_chunk_size_tokens":99,"chunk_overlap_tokens":0}}`:    "max_chunk_size_tokens",
		`{"type":"static","static":{"max_chunk_size_tokens":4097,"chunk_overlap_tokens":0}}`:  "max_chunk_size_tokens",
		`{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":401}}`: "chunk_overlap_tokens",
		`{"type":"static"}`:     "chunking_strategy.static",
		`{"type":"contextual"}`: "chunking_strategy.type",
		`{"type":"other"}`:      "chunking_strategy.type",
		`"auto"`:                "chunking_strategy",
	} {
		_, err := ParseChunking(json.RawMessage(raw))
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("ParseChunking(%s) = %v, want %q", raw, err, want)
		}
	}
}

// A store deleted while files are being attached to it leaves nothing
// behind, whichever finishes first.
func TestDeleteStoreRacingAttaches(t *testing.T) {
	both(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		ids := []string{f.upload(t, "a.txt", "alpha"), f.upload(t, "b.txt", "beta"), f.upload(t, "c.txt", "gamma")}
		for round := range 5 {
			vs := f.newStore(t, StoreParams{})
			var wg sync.WaitGroup
			for _, id := range ids {
				wg.Go(func() {
					_, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: id})
					if err != nil && !errcode.Is(err, ErrVectorStoreNotFound) {
						t.Error(err)
					}
				})
			}
			wg.Go(func() {
				if err := f.svc.DeleteVectorStore(ctx, vs.ID); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() { f.drain(t) })
			wg.Wait()
			f.drain(t)
			if left := leftovers(t, f.svc.store, vs.ID, ids...); len(left) > 0 {
				t.Fatalf("round %d left %v", round, left)
			}
			if n, _ := f.svc.store.IndexLen(ctx, jobsIndex); n != 0 {
				t.Fatalf("round %d left %d jobs", round, n)
			}
		}
	})
}

// Vector search with a model whose vectors differ from the files': a 400
// that says what to do, not a 500 or an empty page.
func TestVectorSearchAfterModelChange(t *testing.T) {
	dims := 4
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		data := make([]map[string]any, len(req.Input))
		for i := range req.Input {
			v := make([]float32, dims)
			v[i%dims] = 1
			data[i] = map[string]any{"index": i, "embedding": v}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	defer srv.Close()
	store, blobs := testsvc.Embedded(t)
	f := newFixture(t, store, bucket.Compose(blobs))
	f.svc.embed = newEmbedder(EmbeddingsConfig{URL: srv.URL, Model: "m"})
	ctx := context.Background()
	vs := f.newStore(t, StoreParams{})
	if _, err := f.svc.AttachFile(ctx, vs.ID, AttachParams{FileID: f.upload(t, "a.txt", "vectors of four")}); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	if page, err := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"four"}, Mode: "vector"}); err != nil || len(page.Data) != 1 {
		t.Fatalf("vector search = %+v, %v", page, err)
	}
	dims = 8
	_, err := f.svc.SearchVectorStore(ctx, vs.ID, SearchParams{Query: []string{"four"}, Mode: "hybrid"})
	if !errcode.Is(err, errcode.ErrInvalidRequest) || !strings.Contains(err.Error(), "re-attach") {
		t.Fatalf("search after the model changed: %v", err)
	}
}
