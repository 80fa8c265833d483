package main

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// Idle workers poll the shared queue this often in the tests; a local
// attach wakes them at once anyway.
const testPoll = "FERRY_OPENAI_VECTOR_POLL_INTERVAL=50ms"

func (be backendEnv) startVS(t *testing.T, env ...string) *proc {
	return startFerryd(t, be.args, append(append([]string{testPoll}, be.env...), env...)...)
}

func vsClient(t *testing.T, p *proc) openai.Client {
	t.Helper()
	return sdk(p, "/v1/openai/v1")
}

func attachAndPoll(t *testing.T, c openai.Client, vs string, p openai.VectorStoreFileNewParams) *openai.VectorStoreFile {
	t.Helper()
	f, err := c.VectorStores.Files.NewAndPoll(context.Background(), vs, p, 50)
	if err != nil {
		t.Fatalf("attach %s: %v", p.FileID, err)
	}
	return f
}

func strAttr(s string) openai.VectorStoreFileNewParamsAttributeUnion {
	return openai.VectorStoreFileNewParamsAttributeUnion{OfString: openai.String(s)}
}
func numAttr(f float64) openai.VectorStoreFileNewParamsAttributeUnion {
	return openai.VectorStoreFileNewParamsAttributeUnion{OfFloat: openai.Float(f)}
}
func boolAttr(b bool) openai.VectorStoreFileNewParamsAttributeUnion {
	return openai.VectorStoreFileNewParamsAttributeUnion{OfBool: openai.Bool(b)}
}

func wantFileCounts(t *testing.T, c openai.VectorStoreFileCounts, inProgress, completed, failed, cancelled int64) {
	t.Helper()
	if c.InProgress != inProgress || c.Completed != completed || c.Failed != failed || c.Cancelled != cancelled ||
		c.Total != inProgress+completed+failed+cancelled {
		t.Fatalf("file_counts = %s, want in_progress %d completed %d failed %d cancelled %d", c.RawJSON(), inProgress, completed, failed, cancelled)
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, x := range items {
		out[i] = id(x)
	}
	return out
}

func fileIDs(files []openai.VectorStoreFile) []string {
	return ids(files, func(f openai.VectorStoreFile) string { return f.ID })
}

func topics(page []openai.VectorStoreSearchResponse) []string {
	var out []string
	for _, r := range page {
		if tp := r.Attributes["topic"].AsString(); !slices.Contains(out, tp) {
			out = append(out, tp)
		}
	}
	sort.Strings(out)
	return out
}

// The "done when": the whole lifecycle through the official SDK,
// with the Llama Stack integration cases that apply.
func TestVectorStoresLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.startVS(t)
		c := vsClient(t, p)
		ctx := context.Background()
		base := "http://" + p.addr + "/v1/openai/v1"

		vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("docs"),
			Metadata: shared.Metadata{"purpose": "testing"}})
		if err != nil || !strings.HasPrefix(vs.ID, "vs_") || vs.Object != "vector_store" || vs.Name != "docs" ||
			vs.Metadata["purpose"] != "testing" || vs.Status != "completed" || vs.CreatedAt == 0 || vs.LastActiveAt == 0 {
			t.Fatalf("create = %+v, %v", vs, err)
		}
		wantFileCounts(t, vs.FileCounts, 0, 0, 0, 0)

		// Search on an empty store: data is [], not null and not an error.
		empty, err := c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
			Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("test query")}, MaxNumResults: openai.Int(5)})
		if err != nil || len(empty.Data) != 0 || !strings.Contains(empty.RawJSON(), `"data":[]`) ||
			!strings.Contains(empty.RawJSON(), `"search_query":["test query"]`) || !strings.Contains(empty.RawJSON(), `"has_more":false`) {
			t.Fatalf("empty search = %s, %v", empty.RawJSON(), err)
		}

		// Three files, attached with attributes, each polled to completed.
		docs := []struct {
			name, text string
			attrs      map[string]openai.VectorStoreFileNewParamsAttributeUnion
		}{
			{"ai_doc.txt", "Artificial intelligence and machine learning transform industries.",
				map[string]openai.VectorStoreFileNewParamsAttributeUnion{"topic": strAttr("ai"), "priority": numAttr(1), "featured": boolAttr(true)}},
			{"prog_doc.md", "# Python\nPython programming and software development are essential skills. The secret string is foobazbar.",
				map[string]openai.VectorStoreFileNewParamsAttributeUnion{"topic": strAttr("programming"), "priority": numAttr(2), "featured": boolAttr(true)}},
			{"bio_doc.csv", "field,text\nbiology,Biology and genetics are studied in life sciences research.",
				map[string]openai.VectorStoreFileNewParamsAttributeUnion{"topic": strAttr("biology"), "priority": numAttr(3), "featured": boolAttr(false)}},
		}
		var attached []string
		var usage int64
		used := map[string]int64{}
		for _, d := range docs {
			f := uploadSDK(t, c, d.name, []byte(d.text), openai.FilePurposeAssistants)
			got := attachAndPoll(t, c, vs.ID, openai.VectorStoreFileNewParams{FileID: f.ID, Attributes: d.attrs})
			st := got.ChunkingStrategy.AsStatic()
			if got.Status != "completed" || got.ID != f.ID || got.VectorStoreID != vs.ID || got.Object != "vector_store.file" ||
				got.ChunkingStrategy.Type != "static" || st.Static.MaxChunkSizeTokens != 800 || st.Static.ChunkOverlapTokens != 400 ||
				got.CreatedAt == 0 || got.JSON.LastError.Valid() || got.UsageBytes <= 0 {
				t.Fatalf("attached %s = %s", d.name, got.RawJSON())
			}
			attached = append(attached, f.ID)
			used[f.ID] = got.UsageBytes
			usage += got.UsageBytes
		}
		store, err := c.VectorStores.Get(ctx, vs.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantFileCounts(t, store.FileCounts, 0, 3, 0, 0)
		if store.UsageBytes != usage || used[attached[0]] != int64(len(docs[0].text)) {
			t.Fatalf("usage_bytes = %d, want %d (the files' chunk text: %v)", store.UsageBytes, usage, used)
		}

		// The file object has exactly the VectorStoreFileObject's fields.
		r := testhttp.Do(t, "GET", base+"/vector_stores/"+vs.ID+"/files/"+attached[0], nil)
		var raw map[string]any
		_ = json.Unmarshal(r.Body, &raw)
		keys := make([]string, 0, len(raw))
		for k := range raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if r.Code != 200 || strings.Join(keys, ",") != "attributes,chunking_strategy,created_at,id,last_error,object,status,usage_bytes,vector_store_id" || raw["last_error"] != nil {
			t.Fatalf("retrieve = %d %s", r.Code, r.Body)
		}

		// Listing: both directions, both cursors, limit, filter.
		all, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{})
		if err != nil || strings.Join(fileIDs(all.Data), ",") != strings.Join([]string{attached[2], attached[1], attached[0]}, ",") || all.HasMore {
			t.Fatalf("list (default desc) = %v, %v; attached %v", fileIDs(all.Data), err, attached)
		}
		first, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Limit: openai.Int(2), Order: "asc"})
		if err != nil || len(first.Data) != 2 || !first.HasMore || first.Data[0].ID != attached[0] {
			t.Fatalf("first page = %v, %v", fileIDs(first.Data), err)
		}
		var cursors struct {
			FirstID string `json:"first_id"`
			LastID  string `json:"last_id"`
		}
		_ = json.Unmarshal([]byte(first.RawJSON()), &cursors)
		if cursors.FirstID != attached[0] || cursors.LastID != attached[1] {
			t.Fatalf("first_id/last_id = %+v", cursors)
		}
		next, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Limit: openai.Int(2), Order: "asc", After: openai.String(attached[1])})
		if err != nil || len(next.Data) != 1 || next.HasMore || next.Data[0].ID != attached[2] {
			t.Fatalf("after page = %v, %v", fileIDs(next.Data), err)
		}
		back, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Order: "asc", Before: openai.String(attached[2])})
		if err != nil || strings.Join(fileIDs(back.Data), ",") != attached[0]+","+attached[1] {
			t.Fatalf("before page = %v, %v", fileIDs(back.Data), err)
		}
		var paged []string
		iter := c.VectorStores.Files.ListAutoPaging(ctx, vs.ID, openai.VectorStoreFileListParams{Limit: openai.Int(1), Order: "asc"})
		for iter.Next() {
			paged = append(paged, iter.Current().ID)
		}
		if iter.Err() != nil || strings.Join(paged, ",") != strings.Join(attached, ",") {
			t.Fatalf("auto-paging = %v, %v", paged, iter.Err())
		}
		if done, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Filter: "completed"}); err != nil || len(done.Data) != 3 {
			t.Fatalf("filter=completed = %d, %v", len(done.Data), err)
		}
		if failed, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Filter: "failed"}); err != nil || len(failed.Data) != 0 {
			t.Fatalf("filter=failed = %d, %v", len(failed.Data), err)
		}

		// Content is the text (each file is one chunk).
		content, err := c.VectorStores.Files.Content(ctx, vs.ID, attached[0])
		if err != nil || len(content.Data) != 1 || content.Data[0].Type != "text" || content.Data[0].Text != docs[0].text ||
			!strings.Contains(content.RawJSON(), `"object":"vector_store.file_content.page"`) {
			t.Fatalf("content = %s, %v", content.RawJSON(), err)
		}

		search := func(q string, opts ...func(*openai.VectorStoreSearchParams)) []openai.VectorStoreSearchResponse {
			t.Helper()
			p := openai.VectorStoreSearchParams{Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String(q)}, MaxNumResults: openai.Int(10)}
			for _, o := range opts {
				o(&p)
			}
			page, err := c.VectorStores.Search(ctx, vs.ID, p)
			if err != nil {
				t.Fatalf("search %q: %v", q, err)
			}
			for i, r := range page.Data {
				if r.Score <= 0 || r.Score > 1 || i > 0 && r.Score > page.Data[i-1].Score {
					t.Fatalf("search %q: scores not in (0,1] and descending: %s", q, page.RawJSON())
				}
			}
			return page.Data
		}
		filter := func(raw string) func(*openai.VectorStoreSearchParams) {
			return func(p *openai.VectorStoreSearchParams) {
				var f shared.CompoundFilterParam
				var cmp shared.ComparisonFilterParam
				if strings.Contains(raw, `"filters"`) {
					_ = json.Unmarshal([]byte(raw), &f)
					p.Filters = openai.VectorStoreSearchParamsFiltersUnion{OfCompoundFilter: &f}
				} else {
					_ = json.Unmarshal([]byte(raw), &cmp)
					p.Filters = openai.VectorStoreSearchParamsFiltersUnion{OfComparisonFilter: &cmp}
				}
			}
		}

		// Keyword search finds the right chunk.
		hits := search("What is the secret string?")
		if len(hits) == 0 || hits[0].FileID != attached[1] || hits[0].Filename != "prog_doc.md" || !strings.Contains(hits[0].Content[0].Text, "foobazbar") ||
			hits[0].Attributes["topic"].AsString() != "programming" {
			t.Fatalf("secret string search = %+v", hits)
		}
		if hits := search("genetics"); len(hits) != 1 || hits[0].FileID != attached[2] {
			t.Fatalf("genetics = %+v", hits)
		}
		// Filters narrow it: eq, lte, or, boolean eq.
		q := "intelligence programming biology"
		if got := topics(search(q)); strings.Join(got, ",") != "ai,biology,programming" {
			t.Fatalf("unfiltered topics = %v", got)
		}
		if got := topics(search(q, filter(`{"type":"eq","key":"topic","value":"ai"}`))); strings.Join(got, ",") != "ai" {
			t.Fatalf("eq topics = %v", got)
		}
		if got := topics(search(q, filter(`{"type":"lte","key":"priority","value":2}`))); strings.Join(got, ",") != "ai,programming" {
			t.Fatalf("lte topics = %v", got)
		}
		or := `{"type":"or","filters":[{"type":"eq","key":"topic","value":"ai"},{"type":"eq","key":"topic","value":"programming"}]}`
		if got := topics(search(q, filter(or))); strings.Join(got, ",") != "ai,programming" {
			t.Fatalf("or topics = %v", got)
		}
		if got := topics(search(q, filter(`{"type":"eq","key":"featured","value":true}`))); strings.Join(got, ",") != "ai,programming" {
			t.Fatalf("boolean eq topics = %v", got)
		}
		// score_threshold drops the low scores; max_num_results caps.
		ranked := search(q)
		if len(ranked) < 2 {
			t.Fatalf("ranked = %+v", ranked)
		}
		threshold := ranked[1].Score + 1e-9
		high := search(q, func(p *openai.VectorStoreSearchParams) {
			p.RankingOptions = openai.VectorStoreSearchParamsRankingOptions{ScoreThreshold: openai.Float(threshold)}
		})
		if len(high) != 1 || high[0].FileID != ranked[0].FileID {
			t.Fatalf("threshold %v kept %+v", threshold, high)
		}
		if one := search(q, func(p *openai.VectorStoreSearchParams) { p.MaxNumResults = openai.Int(1) }); len(one) != 1 {
			t.Fatalf("max_num_results=1 gave %d", len(one))
		}

		// Update attributes; search filters see them.
		upd, err := c.VectorStores.Files.Update(ctx, vs.ID, attached[2], openai.VectorStoreFileUpdateParams{
			Attributes: map[string]openai.VectorStoreFileUpdateParamsAttributeUnion{"topic": {OfString: openai.String("genetics")}}})
		if err != nil || upd.Attributes["topic"].AsString() != "genetics" || upd.Status != "completed" {
			t.Fatalf("update = %+v, %v", upd, err)
		}
		if got, _ := c.VectorStores.Files.Get(ctx, vs.ID, attached[2]); got.Attributes["topic"].AsString() != "genetics" || len(got.Attributes) != 1 {
			t.Fatalf("retrieve after update = %s", got.RawJSON())
		}
		if got := topics(search(q, filter(`{"type":"eq","key":"topic","value":"genetics"}`))); strings.Join(got, ",") != "genetics" {
			t.Fatalf("filter on the new attribute = %v", got)
		}

		// Delete a file: counts fall, search no longer finds it, the file stays.
		del, err := c.VectorStores.Files.Delete(ctx, vs.ID, attached[1])
		if err != nil || !del.Deleted || del.ID != attached[1] || del.Object != "vector_store.file.deleted" {
			t.Fatalf("delete file = %+v, %v", del, err)
		}
		store, _ = c.VectorStores.Get(ctx, vs.ID)
		wantFileCounts(t, store.FileCounts, 0, 2, 0, 0)
		if store.UsageBytes != usage-used[attached[1]] {
			t.Fatalf("usage_bytes after delete = %d", store.UsageBytes)
		}
		for _, h := range search("What is the secret string? foobazbar") {
			if h.FileID == attached[1] {
				t.Fatalf("a deleted file is still found: %+v", h)
			}
		}
		if _, err := c.Files.Get(ctx, attached[1]); err != nil {
			t.Fatalf("the underlying file went with it: %v", err)
		}
		if _, err := c.VectorStores.Files.Get(ctx, vs.ID, attached[1]); statusOf(err) != 404 {
			t.Fatalf("retrieve a deleted file: %v", err)
		}

		// Update the store; last_active_at never goes back.
		mod, err := c.VectorStores.Update(ctx, vs.ID, openai.VectorStoreUpdateParams{Name: openai.String("renamed"),
			Metadata: shared.Metadata{"version": "1.1"}, ExpiresAfter: openai.VectorStoreUpdateParamsExpiresAfter{Days: 7}})
		if err != nil || mod.Name != "renamed" || mod.Metadata["version"] != "1.1" || mod.LastActiveAt < vs.LastActiveAt ||
			mod.ExpiresAfter.Days != 7 || mod.ExpiresAt != mod.LastActiveAt+7*86400 {
			t.Fatalf("update store = %s, %v", mod.RawJSON(), err)
		}

		// Two stores with the same name are two stores.
		twin, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("renamed")})
		if err != nil || twin.ID == vs.ID {
			t.Fatalf("twin = %+v, %v", twin, err)
		}
		list, err := c.VectorStores.List(ctx, openai.VectorStoreListParams{})
		if err != nil || len(list.Data) != 2 || list.Data[0].ID != twin.ID {
			t.Fatalf("list stores = %v, %v", ids(list.Data, func(v openai.VectorStore) string { return v.ID }), err)
		}
		if lim, _ := c.VectorStores.List(ctx, openai.VectorStoreListParams{Limit: openai.Int(1)}); len(lim.Data) != 1 || !lim.HasMore {
			t.Fatalf("limit=1 = %s", lim.RawJSON())
		}

		// Delete the store; it is gone, its files are not.
		gone, err := c.VectorStores.Delete(ctx, vs.ID)
		if err != nil || !gone.Deleted || gone.Object != "vector_store.deleted" {
			t.Fatalf("delete store = %+v, %v", gone, err)
		}
		for _, err := range []error{
			func() error { _, err := c.VectorStores.Get(ctx, vs.ID); return err }(),
			func() error {
				_, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{})
				return err
			}(),
			func() error {
				_, err := c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("x")}})
				return err
			}(),
		} {
			if statusOf(err) != 404 {
				t.Fatalf("deleted store answered %v, want 404", err)
			}
		}
		if list, _ := c.VectorStores.List(ctx, openai.VectorStoreListParams{}); len(list.Data) != 1 {
			t.Fatalf("stores after delete = %d", len(list.Data))
		}
		if _, err := c.Files.Get(ctx, attached[0]); err != nil {
			t.Fatalf("deleting the store deleted a file: %v", err)
		}
	})
}

// file_ids at creation, with one that names no file: it counts as failed
// and filter=failed lists it (Llama Stack's behaviour).
func TestVectorStoreCreateWithFileIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.startVS(t)
		c := vsClient(t, p)
		ctx := context.Background()
		var valid []string
		for i := range 3 {
			valid = append(valid, uploadSDK(t, c, "f.txt", []byte("This is a test file "+string(rune('a'+i))), openai.FilePurposeAssistants).ID)
		}
		vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("s"), FileIDs: append(valid, "invalid_file_id"),
			ChunkingStrategy: openai.FileChunkingStrategyParamOfStatic(openai.StaticFileChunkingStrategyParam{MaxChunkSizeTokens: 200, ChunkOverlapTokens: 100})})
		if err != nil || vs.FileCounts.Total != 4 || vs.FileCounts.Failed != 1 {
			t.Fatalf("create = %s, %v", vs.RawJSON(), err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for vs.FileCounts.InProgress > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			vs, _ = c.VectorStores.Get(ctx, vs.ID)
		}
		wantFileCounts(t, vs.FileCounts, 0, 3, 1, 0)
		if vs.Status != "completed" {
			t.Fatalf("status = %s", vs.Status)
		}
		failed, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Filter: "failed"})
		if err != nil || len(failed.Data) != 1 || failed.Data[0].ID != "invalid_file_id" || failed.Data[0].LastError.Code != "invalid_file" {
			t.Fatalf("filter=failed = %s, %v", failed.RawJSON(), err)
		}
		done, _ := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Filter: "completed"})
		for _, f := range done.Data {
			if s := f.ChunkingStrategy.AsStatic().Static; s.MaxChunkSizeTokens != 200 || s.ChunkOverlapTokens != 100 {
				t.Fatalf("chunking strategy not kept: %s", f.RawJSON())
			}
		}
		if _, err := c.VectorStores.Files.Delete(ctx, vs.ID, "invalid_file_id"); err != nil {
			t.Fatal(err)
		}
		vs, _ = c.VectorStores.Get(ctx, vs.ID)
		wantFileCounts(t, vs.FileCounts, 0, 3, 0, 0)

		// Deleting a file, through either API, takes it out of the store.
		if _, err := c.Files.Delete(ctx, valid[0]); err != nil {
			t.Fatal(err)
		}
		vs, _ = c.VectorStores.Get(ctx, vs.ID)
		wantFileCounts(t, vs.FileCounts, 0, 2, 0, 0)
		if r := testhttp.Do(t, "DELETE", "http://"+p.addr+"/v1/files/openai/"+valid[1]+"/f.txt", nil); r.Code != 204 {
			t.Fatalf("native delete = %d %s", r.Code, r.Body)
		}
		vs, _ = c.VectorStores.Get(ctx, vs.ID)
		wantFileCounts(t, vs.FileCounts, 0, 1, 0, 0)
		if _, err := c.VectorStores.Files.Get(ctx, vs.ID, valid[1]); statusOf(err) != 404 {
			t.Fatalf("a natively deleted file is still in the store: %v", err)
		}

		// A native upload session to the same bucket and key replaces the
		// file under a new id: the old id leaves the store, the new one is
		// not attached by itself.
		repl := uploadHTTP(t, p, "openai", valid[2]+"/f.txt", []byte("This is the replacement"), 8)
		if repl["file_id"] == valid[2] || repl["file_id"] == "" {
			t.Fatalf("replacement = %v", repl)
		}
		vs, _ = c.VectorStores.Get(ctx, vs.ID)
		wantFileCounts(t, vs.FileCounts, 0, 0, 0, 0)
		if _, err := c.VectorStores.Files.Get(ctx, vs.ID, valid[2]); statusOf(err) != 404 {
			t.Fatalf("a replaced file is still in the store: %v", err)
		}
		if r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/openai/v1/vector_stores/"+vs.ID+"/files/"+repl["file_id"].(string), nil); r.Code != 404 {
			t.Fatalf("the replacement is in the store: %d %s", r.Code, r.Body)
		}
		page, err := c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
			Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("test")}})
		if err != nil || len(page.Data) != 0 {
			t.Fatalf("search after every file left = %v, %v", page, err)
		}
	})
}

func TestVectorStoreFileBatches(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.startVS(t)
		c := vsClient(t, p)
		ctx := context.Background()
		vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("batches")})
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for i := range 3 {
			files = append(files, uploadSDK(t, c, "b.txt", []byte("This is batch test file "+string(rune('a'+i))), openai.FilePurposeAssistants).ID)
		}
		batch, err := c.VectorStores.FileBatches.New(ctx, vs.ID, openai.VectorStoreFileBatchNewParams{FileIDs: files,
			Attributes: map[string]openai.VectorStoreFileBatchNewParamsAttributeUnion{"src": {OfString: openai.String("batch")}}})
		if err != nil || !strings.HasPrefix(batch.ID, "vsfb_") || batch.Object != "vector_store.files_batch" || batch.VectorStoreID != vs.ID ||
			batch.FileCounts.Total != 3 {
			t.Fatalf("batch = %s, %v", batch.RawJSON(), err)
		}
		batch, err = c.VectorStores.FileBatches.PollStatus(ctx, vs.ID, batch.ID, 50)
		if err != nil || batch.Status != "completed" {
			t.Fatalf("polled batch = %+v, %v", batch, err)
		}
		wantFileCounts(t, openai.VectorStoreFileCounts(batch.FileCounts), 0, 3, 0, 0)
		page, err := c.VectorStores.FileBatches.ListFiles(ctx, vs.ID, batch.ID, openai.VectorStoreFileBatchListFilesParams{Limit: openai.Int(2)})
		if err != nil || len(page.Data) != 2 || !page.HasMore || page.Data[0].Attributes["src"].AsString() != "batch" {
			t.Fatalf("batch files = %s, %v", page.RawJSON(), err)
		}
		rest, err := c.VectorStores.FileBatches.ListFiles(ctx, vs.ID, batch.ID, openai.VectorStoreFileBatchListFilesParams{Limit: openai.Int(2), After: openai.String(page.Data[1].ID)})
		if err != nil || len(rest.Data) != 1 || rest.HasMore || slices.Contains(fileIDs(page.Data), rest.Data[0].ID) {
			t.Fatalf("second page = %v, %v", fileIDs(rest.Data), err)
		}
		if _, err := c.VectorStores.FileBatches.Get(ctx, vs.ID, "vsfb_nonexistent"); statusOf(err) != 404 {
			t.Fatalf("unknown batch: %v", err)
		}
		if _, err := c.VectorStores.FileBatches.New(ctx, "vs_nonexistent", openai.VectorStoreFileBatchNewParams{FileIDs: files}); statusOf(err) != 404 {
			t.Fatalf("batch in an unknown store: %v", err)
		}
		bad, err := c.VectorStores.FileBatches.New(ctx, vs.ID, openai.VectorStoreFileBatchNewParams{FileIDs: []string{"invalid_1", "invalid_2"}})
		if err != nil || bad.Status != "completed" || bad.FileCounts.Failed != 2 || bad.FileCounts.Total != 2 {
			t.Fatalf("batch of unknown ids = %s, %v", bad.RawJSON(), err)
		}
		if _, err := c.VectorStores.FileBatches.Cancel(ctx, vs.ID, batch.ID); statusOf(err) != 400 {
			t.Fatalf("cancelling a completed batch: %v", err)
		}
	})
}

// An instance with no workers serves the API only: its batches wait in
// the shared queue, so cancel is deterministic here. On Redis + S3 a
// second instance with workers then processes what the first accepted.
func TestVectorStoreCancelAndSharedQueue(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		api := be.startVS(t, "FERRY_OPENAI_VECTOR_WORKERS=0")
		c := vsClient(t, api)
		ctx := context.Background()
		vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{})
		if err != nil {
			t.Fatal(err)
		}
		a := uploadSDK(t, c, "a.txt", []byte("alpha"), openai.FilePurposeAssistants).ID
		b := uploadSDK(t, c, "b.txt", []byte("beta"), openai.FilePurposeAssistants).ID
		batch, err := c.VectorStores.FileBatches.New(ctx, vs.ID, openai.VectorStoreFileBatchNewParams{FileIDs: []string{a, b}})
		if err != nil || batch.Status != "in_progress" {
			t.Fatalf("batch = %+v, %v", batch, err)
		}
		cancelled, err := c.VectorStores.FileBatches.Cancel(ctx, vs.ID, batch.ID)
		if err != nil || cancelled.Status != "cancelled" || cancelled.ID != batch.ID {
			t.Fatalf("cancel = %+v, %v", cancelled, err)
		}
		wantFileCounts(t, openai.VectorStoreFileCounts(cancelled.FileCounts), 0, 0, 0, 2)
		store, _ := c.VectorStores.Get(ctx, vs.ID)
		wantFileCounts(t, store.FileCounts, 0, 0, 0, 2)
		if got, _ := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Filter: "cancelled"}); len(got.Data) != 2 {
			t.Fatalf("filter=cancelled = %s", got.RawJSON())
		}
		if be.name != "redis+s3" {
			return
		}
		d := uploadSDK(t, c, "d.txt", []byte("delta is processed elsewhere"), openai.FilePurposeAssistants).ID
		if f, err := c.VectorStores.Files.New(ctx, vs.ID, openai.VectorStoreFileNewParams{FileID: d}); err != nil || f.Status != "in_progress" {
			t.Fatalf("attach on the API-only instance = %+v, %v", f, err)
		}
		be.startVS(t) // a worker instance on the same Redis and S3; nothing wakes it but the queue
		f, err := c.VectorStores.Files.PollStatus(ctx, vs.ID, d, 50)
		if err != nil || f.Status != "completed" {
			t.Fatalf("file after the worker instance started = %+v, %v", f, err)
		}
	})
}

func TestVectorStoreErrors(t *testing.T) {
	p := embeddedEnv(t).startVS(t)
	c := vsClient(t, p)
	ctx := context.Background()
	base := "http://" + p.addr + "/v1/openai/v1"
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	// A binary file fails with last_error, and the service stays up.
	bin := uploadSDK(t, c, "image.png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"), openai.FilePurposeAssistants)
	f := attachAndPoll(t, c, vs.ID, openai.VectorStoreFileNewParams{FileID: bin.ID})
	if f.Status != "failed" || f.LastError.Code != "unsupported_file" || f.LastError.Message == "" {
		t.Fatalf("binary file = %s", f.RawJSON())
	}
	if _, err := c.VectorStores.Files.Content(ctx, vs.ID, bin.ID); statusOf(err) != 400 {
		t.Fatalf("content of a failed file: %v", err)
	}
	text := uploadSDK(t, c, "t.txt", []byte("some words"), openai.FilePurposeAssistants)
	for _, tc := range []struct {
		name, path, body, want string
		code                   int
	}{
		{"static too small", "/files", `{"file_id":"` + text.ID + `","chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":50,"chunk_overlap_tokens":0}}}`, "max_chunk_size_tokens", 400},
		{"overlap over half", "/files", `{"file_id":"` + text.ID + `","chunking_strategy":{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":500}}}`, "chunk_overlap_tokens", 400},
		{"unknown strategy", "/files", `{"file_id":"` + text.ID + `","chunking_strategy":{"type":"semantic"}}`, "chunking_strategy.type", 400},
		{"too many attributes", "/files", `{"file_id":"` + text.ID + `","attributes":{` + manyAttrs(17) + `}}`, "16", 400},
		{"attribute too long", "/files", `{"file_id":"` + text.ID + `","attributes":{"k":"` + strings.Repeat("x", 513) + `"}}`, "512", 400},
		{"nested attribute", "/files", `{"file_id":"` + text.ID + `","attributes":{"k":{"a":1}}}`, "attribute", 400},
		{"unknown file", "/files", `{"file_id":"file-00000000000000000000000000000000"}`, "file-0", 404},
		{"no file_id", "/files", `{}`, "file_id", 400},
		{"vector without embeddings", "/search", `{"query":"x","search_mode":"vector"}`, "FERRY_OPENAI_EMBEDDINGS_URL", 400},
		{"hybrid without embeddings", "/search", `{"query":"x","search_mode":"hybrid"}`, "FERRY_OPENAI_EMBEDDINGS_URL", 400},
		{"unknown mode", "/search", `{"query":"x","search_mode":"semantic"}`, "search_mode", 400},
		{"max_num_results 0", "/search", `{"query":"x","max_num_results":0}`, "max_num_results", 400},
		{"max_num_results 51", "/search", `{"query":"x","max_num_results":51}`, "max_num_results", 400},
		{"bad filter", "/search", `{"query":"x","filters":{"type":"like","key":"a","value":"b"}}`, "like", 400},
		{"no query", "/search", `{}`, "query", 400},
		{"bad threshold", "/search", `{"query":"x","ranking_options":{"score_threshold":2}}`, "score_threshold", 400},
	} {
		r := testhttp.Do(t, "POST", base+"/vector_stores/"+vs.ID+tc.path, strings.NewReader(tc.body), "Content-Type", "application/json")
		e, _ := r.JSON(t)["error"].(map[string]any)
		if r.Code != tc.code || !strings.Contains(e["message"].(string), tc.want) || e["type"] != "invalid_request_error" {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, r.Code, r.Body, tc.code, tc.want)
		}
	}
	for _, bad := range []string{"limit=0", "limit=101", "order=up", "filter=done"} {
		if r := testhttp.Do(t, "GET", base+"/vector_stores/"+vs.ID+"/files?"+bad, nil); r.Code != 400 {
			t.Errorf("list files ?%s: %d %s", bad, r.Code, r.Body)
		}
	}
	if r := testhttp.Do(t, "GET", base+"/vector_stores/"+vs.ID+"/files?after=file-unknown", nil); r.Code != 400 {
		t.Errorf("unknown cursor: %d %s", r.Code, r.Body)
	}
	// Unknown store: 404 (upstream answers 400).
	if _, err := c.VectorStores.Files.List(ctx, "abc123", openai.VectorStoreFileListParams{}); statusOf(err) != 404 {
		t.Errorf("files of an unknown store: %v", err)
	}
	if r := testhttp.Do(t, "POST", base+"/vector_stores", strings.NewReader(`{"expires_after":{"anchor":"created_at","days":1}}`)); r.Code != 400 {
		t.Errorf("bad expiry anchor: %d %s", r.Code, r.Body)
	}
}

func manyAttrs(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"k` + string(rune('a'+i)) + `":1`
	}
	return strings.Join(parts, ",")
}

// bagOfWords is a stand-in embedding model for the test (there is no real
// model offline): each word is hashed into one of 256 dimensions, so texts
// that share words point the same way. Deterministic, and enough to tell
// that vector and hybrid search rank by the vectors the endpoint returns.
func bagOfWords(text string) []float32 {
	v := make([]float32, 256)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !('a' <= r && r <= 'z') }) {
		h := fnv.New32a()
		h.Write([]byte(w))
		v[h.Sum32()%256]++
	}
	var n float64
	for _, x := range v {
		n += float64(x * x)
	}
	for i := range v {
		if n > 0 {
			v[i] /= float32(math.Sqrt(n))
		}
	}
	return v
}

func embeddingsServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	calls := new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer test-key" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "bow" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		calls.Add(1)
		data := make([]map[string]any, len(req.Input))
		for i, in := range req.Input {
			data[i] = map[string]any{"object": "embedding", "index": i, "embedding": bagOfWords(in)}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": req.Model, "data": data})
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

func TestVectorStoreVectorAndHybridSearch(t *testing.T) {
	srv, calls := embeddingsServer(t)
	p := embeddedEnv(t).startVS(t, "FERRY_OPENAI_EMBEDDINGS_URL="+srv.URL+"/v1", "FERRY_OPENAI_EMBEDDINGS_MODEL=bow", "FERRY_OPENAI_EMBEDDINGS_API_KEY=test-key")
	c := vsClient(t, p)
	ctx := context.Background()
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"Cats purr and chase mice around the house.", "Rockets burn fuel to reach orbit around the earth."}
	var files []string
	for i, text := range texts {
		f := uploadSDK(t, c, "doc.txt", []byte(text), openai.FilePurposeAssistants)
		got := attachAndPoll(t, c, vs.ID, openai.VectorStoreFileNewParams{FileID: f.ID})
		if got.Status != "completed" || got.UsageBytes != int64(len(texts[i])+4*256) {
			t.Fatalf("attach = %s (usage counts the text and 4 bytes per dimension)", got.RawJSON())
		}
		files = append(files, f.ID)
	}
	for _, mode := range []string{"vector", "hybrid", "keyword"} {
		page, err := c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
			Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("rockets reach orbit")}}, option.WithJSONSet("search_mode", mode))
		if err != nil || len(page.Data) == 0 || page.Data[0].FileID != files[1] || page.Data[0].Score <= 0 || page.Data[0].Score > 1 {
			t.Fatalf("%s search = %s, %v", mode, page.RawJSON(), err)
		}
		if mode != "keyword" && len(page.Data) > 1 && page.Data[1].Score >= page.Data[0].Score {
			t.Fatalf("%s search not ranked: %s", mode, page.RawJSON())
		}
	}
	if calls.Load() != 4 { // one per attached file, one per vector or hybrid query
		t.Fatalf("the embeddings endpoint was called %d times, want 4", calls.Load())
	}
}
