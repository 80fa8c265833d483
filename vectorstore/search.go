package vectorstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/textindex"
)

// Rankers accepted in ranking_options.ranker. They all mean the one
// ranking Ferry has; anything else is refused rather than ignored.
var rankers = []string{"auto", "none", "default-2024-11-15"}

// SearchParams are the fields of POST /vector_stores/{id}/search.
type SearchParams struct {
	Query          []string        // one string or several (joined for the search)
	MaxNumResults  int             // 1-50; 0 means 10
	Filters        json.RawMessage // comparison or compound filter on attributes
	Ranker         string
	ScoreThreshold float64 // 0-1
	Mode           string  // keyword (default), vector or hybrid
}

// SearchResult is one chunk found.
type SearchResult struct {
	FileID     string         `json:"file_id"`
	Filename   string         `json:"filename"`
	Score      float64        `json:"score"`
	Attributes map[string]any `json:"attributes"`
	Content    []TextContent  `json:"content"`
}

// SearchPage is OpenAI's vector_store.search_results.page.
type SearchPage struct {
	Object      string         `json:"object"`
	SearchQuery []string       `json:"search_query"`
	Data        []SearchResult `json:"data"`
	HasMore     bool           `json:"has_more"`
	NextPage    *string        `json:"next_page"`
}

// SearchVectorStore searches the store's completed files. Every problem
// with the request or the store is an error, never an empty page.
func (s *Service) SearchVectorStore(ctx context.Context, vs string, p SearchParams) (SearchPage, error) {
	start := time.Now()
	q, filter, err := parseSearch(p)
	if err != nil {
		return SearchPage{}, err
	}
	mode := q.Mode
	rec, _, err := s.loadStore(ctx, vs)
	if err != nil {
		return SearchPage{}, err
	}
	if obj := s.storeObject(rec); obj.Status == "expired" {
		return SearchPage{}, ErrVectorStoreExpired.New("vector store %s expired at %d; create a new one, or set expires_after before it expires", vs, *obj.ExpiresAt)
	}
	if mode != textindex.Keyword && s.embed == nil {
		return SearchPage{}, ErrEmbeddingsMissing.New("search_mode %s needs an embeddings endpoint: set FERRY_OPENAI_EMBEDDINGS_URL and FERRY_OPENAI_EMBEDDINGS_MODEL (openai.embeddings.url and .model), or search with search_mode keyword", mode)
	}

	files, indexes, err := s.searchable(ctx, vs, filter, mode != textindex.Keyword)
	if err != nil {
		return SearchPage{}, err
	}
	page := SearchPage{Object: "vector_store.search_results.page", SearchQuery: p.Query, Data: []SearchResult{}}
	if len(indexes) > 0 {
		if page.Data, err = s.rank(ctx, files, indexes, q); err != nil {
			return SearchPage{}, err
		}
	}
	if _, err := s.touch(ctx, vs); err != nil {
		return SearchPage{}, err
	}
	s.vm.search.WithLabelValues(string(mode)).Observe(time.Since(start).Seconds())
	return page, nil
}

// searchable lists the store's completed files that pass the filter, with
// their indexes from the cache (loaded on a miss). With vectors set, files
// processed without embeddings are left out.
func (s *Service) searchable(ctx context.Context, vs string, filter textindex.Filter, vectors bool) ([]fileSummary, []*textindex.Index, error) {
	var files []fileSummary
	err := s.eachEntry(ctx, statusIndex(storeKey(vs), StatusCompleted), func(e metastore.Entry) error {
		var f fileSummary
		if err := json.Unmarshal(e.Value, &f); err != nil {
			return err
		}
		if filter == nil || filter.Match(f.Attributes) {
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	indexes := make([]*textindex.Index, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, 8) // cold loads in parallel, a few at a time
	var wg sync.WaitGroup
	for i, f := range files {
		key := vs + "/" + f.FileID + "/" + f.Job
		if ix, ok := s.cache.Get(key); ok {
			indexes[i] = ix
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := s.loadChunks(ctx, vs, f.FileID)
			if errcode.Is(err, ErrVectorStoreFileAbsent) {
				return // detached since the index was read
			}
			if err != nil {
				errs[i] = err
				return
			}
			if c.Job != f.Job {
				return // re-attached since: its new chunks come with its new summary
			}
			ix := textindex.NewIndex(c.Texts, decodeVectors(c.Vectors, len(c.Texts), c.Dims))
			s.cache.Add(key, ix, int64(ix.SizeBytes()))
			indexes[i] = ix
		})
	}
	wg.Wait()
	var keptFiles []fileSummary
	var kept []*textindex.Index
	for i, ix := range indexes {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		if ix == nil || vectors && !ix.HasVectors() {
			continue
		}
		keptFiles, kept = append(keptFiles, files[i]), append(kept, ix)
	}
	return keptFiles, kept, nil
}

// parseSearch checks a search's parameters, filling in the default result
// count, and returns its query (without the vector) and filter.
func parseSearch(p SearchParams) (textindex.Query, textindex.Filter, error) {
	text := strings.TrimSpace(strings.Join(p.Query, " "))
	if text == "" {
		return textindex.Query{}, nil, errcode.ErrInvalidRequest.New("query is required: a string, or a list of strings")
	}
	if p.MaxNumResults == 0 {
		p.MaxNumResults = 10
	}
	if p.MaxNumResults < 1 || p.MaxNumResults > 50 {
		return textindex.Query{}, nil, errcode.ErrInvalidRequest.New("max_num_results %d must be from 1 to 50", p.MaxNumResults)
	}
	if p.ScoreThreshold < 0 || p.ScoreThreshold > 1 {
		return textindex.Query{}, nil, errcode.ErrInvalidRequest.New("ranking_options.score_threshold %v must be from 0 to 1 (scores are normalized to 0..1)", p.ScoreThreshold)
	}
	if p.Ranker != "" && !slices.Contains(rankers, p.Ranker) {
		return textindex.Query{}, nil, errcode.ErrInvalidRequest.New("ranking_options.ranker %q is not supported; use %s", p.Ranker, strings.Join(rankers, ", "))
	}
	mode, err := textindex.ParseMode(p.Mode)
	if err != nil {
		return textindex.Query{}, nil, errcode.ErrInvalidRequest.New("search_mode: %v", err)
	}
	filter, err := textindex.ParseFilter(p.Filters)
	if err != nil {
		return textindex.Query{}, nil, errcode.ErrInvalidRequest.New("filters: %v", err)
	}
	return textindex.Query{Text: text, Mode: mode, Limit: p.MaxNumResults, Threshold: p.ScoreThreshold}, filter, nil
}

// rank searches the files' indexes, embedding the query for the modes
// that need it.
func (s *Service) rank(ctx context.Context, files []fileSummary, indexes []*textindex.Index, q textindex.Query) ([]SearchResult, error) {
	if q.Mode != textindex.Keyword {
		vecs, err := s.embed.embed(ctx, []string{q.Text})
		if err != nil {
			return nil, ErrEmbeddingsFailed.Wrap(err, "embedding the query failed: %v", err)
		}
		q.Vector = vecs[0]
	}
	hits, err := textindex.Search(indexes, q)
	if errors.Is(err, textindex.ErrDimensionMismatch) {
		return nil, errcode.ErrInvalidRequest.New("%v: the embeddings model differs from the one the files were processed with; re-attach them, or search with search_mode keyword", err)
	}
	if err != nil {
		return nil, err
	}
	out := []SearchResult{}
	for _, h := range hits {
		f := files[h.Doc]
		attrs := f.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		out = append(out, SearchResult{FileID: f.FileID, Filename: f.Filename, Score: h.Score, Attributes: attrs,
			Content: []TextContent{{Type: "text", Text: indexes[h.Doc].Chunk(h.Chunk)}}})
	}
	return out, nil
}
