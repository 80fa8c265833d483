package textindex

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Mode is how Search ranks chunks.
type Mode string

const (
	Keyword Mode = "keyword"
	Vector  Mode = "vector"
	Hybrid  Mode = "hybrid"
)

// ParseMode parses a search mode; "" means Keyword.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return Keyword, nil
	case Keyword, Vector, Hybrid:
		return m, nil
	}
	return "", fmt.Errorf("unknown search mode %q: use %q, %q or %q", s, Keyword, Vector, Hybrid)
}

// Errors Search returns for a query the indexes cannot answer, wrapped with
// details.
var (
	ErrNoVectors         = errors.New("index has no vectors")
	ErrDimensionMismatch = errors.New("vector dimensions differ")
)

// BM25 parameters: the usual defaults (Lucene, Elasticsearch).
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// bm25Half is the raw BM25 score that maps to 0.5: keyword scores are
// s/(s+bm25Half). Users filter with score_threshold, so a score must depend
// only on the chunk, the query and the collection, not on what else matched
// (dividing by the top score would make the best hit 1 even if it is poor).
// A raw score of 5 is about one rare term (in under 1% of chunks) found once
// in a chunk of average length.
const bm25Half = 5.0

// Hybrid scores are hybridVectorWeight × the vector score + hybridKeywordWeight
// × the keyword score. Vector scores of unrelated text still sit near 0.5 and
// rarely pass 0.9, a narrower band than keyword scores, so vectors get the
// larger weight to keep the two signals of comparable influence on the order.
const (
	hybridVectorWeight  = 0.7
	hybridKeywordWeight = 1 - hybridVectorWeight
)

// Query is one search.
type Query struct {
	Text      string
	Vector    []float32 // the query embedding; required for Vector and Hybrid
	Mode      Mode      // "" means Keyword
	Limit     int       // max hits returned; 0 or less means no limit
	Threshold float64   // drop hits with Score < Threshold
}

// Hit is one ranked chunk.
type Hit struct {
	Doc   int     // position in the indexes slice passed to Search
	Chunk int     // chunk number within that Index
	Score float64 // in [0,1]
}

// Search ranks the chunks of indexes (nil entries count as empty) as one
// collection, best first, ties broken by (Doc, Chunk) ascending.
//
//   - Keyword: BM25 (k1 1.2, b 0.75) with N, document frequencies and the
//     average chunk length summed over all indexes, so a chunk scores the
//     same whether the collection is one file or many. The score is
//     s/(s+bm25Half), see there. Chunks with no query term are not returned.
//   - Vector: cosine similarity to q.Vector mapped to [0,1] as (cos+1)/2.
//     Every chunk has a score.
//   - Hybrid: 0.7 × the vector score + 0.3 × the keyword score.
//
// Vector and Hybrid need a query vector and indexes built with embeddings of
// its length (empty indexes excepted); otherwise the error wraps ErrNoVectors
// or ErrDimensionMismatch.
func Search(indexes []*Index, q Query) ([]Hit, error) {
	mode, err := ParseMode(string(q.Mode))
	if err != nil {
		return nil, err
	}
	var qv []float32
	if mode != Keyword {
		if len(q.Vector) == 0 {
			return nil, fmt.Errorf("%w: %s search needs a query vector, and it is empty", ErrDimensionMismatch, mode)
		}
		for d, ix := range indexes {
			switch {
			case ix == nil || ix.Len() == 0:
			case !ix.HasVectors():
				return nil, fmt.Errorf("%w: %s search, but index %d was built without embeddings", ErrNoVectors, mode, d)
			case ix.dim != len(q.Vector):
				return nil, fmt.Errorf("%w: the query vector has %d dimensions, index %d has %d",
					ErrDimensionMismatch, len(q.Vector), d, ix.dim)
			}
		}
		qv = make([]float32, len(q.Vector))
		unitInto(qv, q.Vector)
	}
	var kq keywordQuery
	if mode != Vector {
		kq = newKeywordQuery(indexes, q.Text)
	}

	top := topHits{limit: q.Limit}
	var acc []float64
	var touched []int32
	for d, ix := range indexes {
		if ix == nil || ix.Len() == 0 {
			continue
		}
		if mode != Vector {
			acc = slices.Grow(acc[:0], ix.Len())[:ix.Len()]
			clear(acc)
			touched = kq.addScores(ix, acc, touched[:0])
		}
		switch mode {
		case Keyword:
			for _, c := range touched {
				top.add(Hit{d, int(c), squashBM25(acc[c])}, q.Threshold)
			}
		case Vector:
			for c := range ix.Len() {
				top.add(Hit{d, c, ix.vectorScore(c, qv)}, q.Threshold)
			}
		case Hybrid:
			for c := range ix.Len() {
				s := hybridVectorWeight*ix.vectorScore(c, qv) + hybridKeywordWeight*squashBM25(acc[c])
				top.add(Hit{d, c, s}, q.Threshold)
			}
		}
	}
	return top.sorted(), nil
}

func squashBM25(raw float64) float64 { return raw / (raw + bm25Half) }

// vectorScore is (cos+1)/2 of chunk c and the unit query vector qv.
func (ix *Index) vectorScore(c int, qv []float32) float64 {
	row := ix.vectors[c*ix.dim : (c+1)*ix.dim]
	var dot float64
	for i, x := range row {
		dot += float64(x) * float64(qv[i])
	}
	return (max(-1, min(1, dot)) + 1) / 2
}

// keywordQuery is a query's distinct terms with their idf over the whole
// collection.
type keywordQuery struct {
	terms []string
	idf   []float64
	avgdl float64
}

func newKeywordQuery(indexes []*Index, text string) keywordQuery {
	var kq keywordQuery
	n, total := 0, 0
	for _, ix := range indexes {
		if ix != nil {
			n += ix.Len()
			total += ix.total
		}
	}
	if n == 0 {
		return kq
	}
	kq.avgdl = max(1, float64(total)/float64(n))
	seen := make(map[string]bool)
	var an analyzer
	an.terms(text, func(term []byte) {
		if seen[string(term)] {
			return
		}
		t := string(term)
		seen[t] = true
		df := 0
		for _, ix := range indexes {
			if ix == nil {
				continue
			}
			if id, ok := ix.terms[t]; ok {
				df += int(ix.offs[id+1] - ix.offs[id])
			}
		}
		if df == 0 {
			return
		}
		// Lucene's idf: never negative, even for terms in most chunks.
		kq.terms = append(kq.terms, t)
		kq.idf = append(kq.idf, math.Log(1+(float64(n-df)+0.5)/(float64(df)+0.5)))
	})
	return kq
}

// addScores adds ix's raw BM25 scores into acc (zero, one per chunk) and
// returns touched with the chunks that got one appended.
func (kq *keywordQuery) addScores(ix *Index, acc []float64, touched []int32) []int32 {
	for i, t := range kq.terms {
		id, ok := ix.terms[t]
		if !ok {
			continue
		}
		idf := kq.idf[i]
		for _, p := range ix.postings[ix.offs[id]:ix.offs[id+1]] {
			if acc[p.chunk] == 0 {
				touched = append(touched, int32(p.chunk))
			}
			tf := float64(p.tf)
			norm := bm25K1 * (1 - bm25B + bm25B*float64(ix.lens[p.chunk])/kq.avgdl)
			acc[p.chunk] += idf * tf * (bm25K1 + 1) / (tf + norm)
		}
	}
	return touched
}

// better is the result order: score descending, then (Doc, Chunk) ascending.
func better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	if a.Doc != b.Doc {
		return a.Doc < b.Doc
	}
	return a.Chunk < b.Chunk
}

// topHits keeps the best limit hits in a heap whose root is the worst one
// kept, so most candidates cost one comparison.
type topHits struct {
	limit int
	h     []Hit
}

func (t *topHits) add(h Hit, threshold float64) {
	switch {
	case h.Score < threshold:
	case t.limit <= 0:
		t.h = append(t.h, h)
	case len(t.h) < t.limit:
		t.h = append(t.h, h)
		for i := len(t.h) - 1; i > 0; {
			p := (i - 1) / 2
			if !better(t.h[p], t.h[i]) {
				break
			}
			t.h[p], t.h[i] = t.h[i], t.h[p]
			i = p
		}
	case better(h, t.h[0]):
		t.h[0] = h
		for i := 0; ; {
			w := 2*i + 1
			if w >= len(t.h) {
				break
			}
			if r := w + 1; r < len(t.h) && better(t.h[w], t.h[r]) {
				w = r
			}
			if !better(t.h[i], t.h[w]) {
				break
			}
			t.h[i], t.h[w] = t.h[w], t.h[i]
			i = w
		}
	}
}

// sorted returns the hits in result order, never nil (callers render it as a
// JSON list).
func (t *topHits) sorted() []Hit {
	if t.h == nil {
		return []Hit{}
	}
	slices.SortFunc(t.h, func(a, b Hit) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
	return t.h
}
