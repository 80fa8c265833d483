package textindex

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

var docs = []string{
	"The ferry crosses the harbour every morning with cargo and passengers.",
	"Cargo manifests list every container on the vessel and its weight.",
	"The captain checks the compass and the tide tables before each voyage.",
	"A lantern hangs above the anchor chain; the crew calls it the xylograph lamp.",
	"Passengers buy tickets at the gateway; the ferry leaves when the tide turns.",
	"Tide tables, tide clocks and tide charts: the harbour master loves the tide.",
}

func TestSearchKeyword(t *testing.T) {
	ix := NewIndex(docs, nil)
	hits, err := Search([]*Index{ix}, Query{Text: "xylograph lamp", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].Chunk != 3 {
		t.Fatalf("rare terms: %v, want chunk 3 alone", hits)
	}

	hits, _ = Search([]*Index{ix}, Query{Text: "Tide ferry", Limit: 10})
	if len(hits) != 4 {
		t.Fatalf("tide ferry matched %d chunks, want 4: %v", len(hits), hits)
	}
	if hits[0].Chunk != 4 {
		t.Errorf("the chunk with both terms should rank first: %v", hits)
	}
	checkSorted(t, hits)

	// A term in no chunk, stopwords and punctuation match nothing.
	for _, q := range []string{"", "submarine", "the and of", "!!! ..."} {
		if hits, _ := Search([]*Index{ix}, Query{Text: q}); len(hits) != 0 {
			t.Errorf("%q matched %v", q, hits)
		}
	}
	if hits, err := Search(nil, Query{Text: "tide"}); err != nil || hits == nil || len(hits) != 0 {
		t.Errorf("no indexes: %v, %v; want an empty non-nil list", hits, err)
	}
}

func TestSearchLimitAndThreshold(t *testing.T) {
	ix := NewIndex(docs, nil)
	all, _ := Search([]*Index{ix}, Query{Text: "tide harbour ferry cargo"})
	if len(all) < 5 {
		t.Fatalf("setup: %d hits", len(all))
	}
	for limit := 1; limit <= len(all); limit++ {
		got, _ := Search([]*Index{ix}, Query{Text: "tide harbour ferry cargo", Limit: limit})
		if !slices.Equal(got, all[:limit]) {
			t.Errorf("limit %d: %v, want %v", limit, got, all[:limit])
		}
	}
	cut := (all[1].Score + all[2].Score) / 2
	got, _ := Search([]*Index{ix}, Query{Text: "tide harbour ferry cargo", Threshold: cut})
	if !slices.Equal(got, all[:2]) {
		t.Errorf("threshold %v: %v, want %v", cut, got, all[:2])
	}
	// The threshold is inclusive.
	got, _ = Search([]*Index{ix}, Query{Text: "tide harbour ferry cargo", Threshold: all[0].Score})
	if len(got) != 1 {
		t.Errorf("threshold at the top score: %v", got)
	}
}

// TestSearchScoresIndependentOfLayout checks that collection-wide statistics
// make a chunk's score the same however chunks are spread over indexes.
func TestSearchScoresIndependentOfLayout(t *testing.T) {
	var chunks []string
	for i := range 40 {
		chunks = append(chunks, proseText(uint64(i), 80+i*7))
	}
	one := []*Index{NewIndex(chunks, nil)}
	two := []*Index{NewIndex(chunks[:13], nil), nil, NewIndex(nil, nil), NewIndex(chunks[13:], nil)}
	locate := func(h Hit) int {
		if h.Doc == 3 {
			return 13 + h.Chunk
		}
		return h.Chunk
	}
	for _, q := range []string{"ferry harbour", "storage network retry", "captain", "time people world"} {
		a, _ := Search(one, Query{Text: q})
		b, _ := Search(two, Query{Text: q})
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%q: %d hits in one index, %d in two", q, len(a), len(b))
		}
		byChunk := map[int]float64{}
		for _, h := range a {
			byChunk[h.Chunk] = h.Score
		}
		for _, h := range b {
			if s, ok := byChunk[locate(h)]; !ok || s != h.Score {
				t.Errorf("%q: chunk %d scores %v in one index, %v in two", q, locate(h), s, h.Score)
			}
		}
	}
}

func TestSearchTiesAreOrdered(t *testing.T) {
	a := NewIndex([]string{"alpha beta", "gamma", "alpha beta"}, nil)
	b := NewIndex([]string{"alpha beta"}, nil)
	hits, _ := Search([]*Index{b, a}, Query{Text: "alpha"})
	want := [][2]int{{0, 0}, {1, 0}, {1, 2}}
	if len(hits) != 3 {
		t.Fatalf("%v", hits)
	}
	for i, h := range hits {
		if h.Score != hits[0].Score || [2]int{h.Doc, h.Chunk} != want[i] {
			t.Fatalf("ties: %v, want (doc, chunk) %v", hits, want)
		}
	}
}

func TestSearchScoreScale(t *testing.T) {
	// One rare term, once, in a chunk of average length scores near 0.5 by
	// design; more matching terms score higher, never reaching 1.
	var chunks []string
	for i := range 200 {
		chunks = append(chunks, fmt.Sprintf("row %d of plain filler words here", i))
	}
	chunks[7] = "row 7 of plain filler words zebra"
	chunks[8] = "zebra zebra okapi okapi quagga quagga zebra"
	ix := NewIndex(chunks, nil)
	hits, _ := Search([]*Index{ix}, Query{Text: "zebra"})
	if len(hits) != 2 || hits[1].Chunk != 7 || hits[1].Score < 0.45 || hits[1].Score > 0.6 {
		t.Errorf("one rare term: %v", hits)
	}
	hits, _ = Search([]*Index{ix}, Query{Text: "zebra okapi quagga"})
	if hits[0].Chunk != 8 || hits[0].Score < 0.75 || hits[0].Score >= 1 {
		t.Errorf("three rare terms: %v", hits)
	}
}

func TestSearchCJK(t *testing.T) {
	ix := NewIndex([]string{"日本語の文章を検索します。", "東京は大きな都市です。", "English only"}, nil)
	for q, want := range map[string]int{"日本": 0, "検索": 0, "都市": 1, "東京都市": 1} {
		hits, _ := Search([]*Index{ix}, Query{Text: q})
		if len(hits) == 0 || hits[0].Chunk != want {
			t.Errorf("%q: %v, want chunk %d first", q, hits, want)
		}
	}
}

func TestSearchVectorAndHybrid(t *testing.T) {
	a := NewIndex([]string{"north tide", "east", "west tide"}, [][]float32{{0, 1, 0}, {1, 0, 0}, {-1, 0, 0}})
	b := NewIndex([]string{"zero vector", "half north"}, [][]float32{{0, 0, 0}, {0, 2, 2}})
	idx := []*Index{a, b, NewIndex(nil, nil)} // empty indexes need no vectors

	hits, err := Search(idx, Query{Mode: Vector, Vector: []float32{0, 3, 0}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Hit{{0, 0, 1}, {1, 1, (math.Sqrt(0.5) + 1) / 2}, {0, 1, 0.5}, {0, 2, 0.5}, {1, 0, 0.5}}
	if !hitsNear(hits, want) {
		t.Errorf("vector: %v, want %v", hits, want)
	}
	hits, _ = Search(idx, Query{Mode: Vector, Vector: []float32{1, 0, 0}, Limit: 1})
	if !hitsNear(hits, []Hit{{0, 1, 1}}) {
		t.Errorf("vector east: %v", hits)
	}
	hits, _ = Search(idx, Query{Mode: Vector, Vector: []float32{1, 0, 0}, Threshold: 0.25})
	if len(hits) != 4 || hits[3].Score != 0.5 { // west (cos -1 → 0) dropped
		t.Errorf("vector threshold: %v", hits)
	}

	// Hybrid: "west tide" points away from the query but matches its words;
	// "east" matches the vector only.
	hits, err = Search(idx, Query{Mode: Hybrid, Text: "west tide", Vector: []float32{1, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 5 {
		t.Fatalf("hybrid returns every chunk: %v", hits)
	}
	kw, _ := Search(idx, Query{Text: "west tide"})
	for _, h := range hits {
		vs, _ := Search(idx[h.Doc:h.Doc+1], Query{Mode: Vector, Vector: []float32{1, 0, 0}})
		var v, k float64
		for _, x := range vs {
			if x.Chunk == h.Chunk {
				v = x.Score
			}
		}
		for _, x := range kw {
			if x.Doc == h.Doc && x.Chunk == h.Chunk {
				k = x.Score
			}
		}
		if want := hybridVectorWeight*v + hybridKeywordWeight*k; math.Abs(h.Score-want) > 1e-12 {
			t.Errorf("hybrid %v: want %v from vector %v and keyword %v", h, want, v, k)
		}
	}
	checkSorted(t, hits)
	if hits[0] != (Hit{0, 1, hits[0].Score}) {
		t.Errorf("hybrid: east should still lead: %v", hits)
	}
}

func TestSearchErrors(t *testing.T) {
	plain := NewIndex([]string{"a b"}, nil)
	vec := NewIndex([]string{"a b"}, [][]float32{{1, 2}})
	for _, tc := range []struct {
		idx  []*Index
		q    Query
		want error
		msg  string
	}{
		{[]*Index{vec, plain}, Query{Mode: Vector, Vector: []float32{1, 0}}, ErrNoVectors, "index 1 was built without embeddings"},
		{[]*Index{plain}, Query{Mode: Hybrid, Text: "a", Vector: []float32{1, 0}}, ErrNoVectors, "hybrid search"},
		{[]*Index{vec}, Query{Mode: Vector, Vector: []float32{1, 0, 0}}, ErrDimensionMismatch, "query vector has 3 dimensions, index 0 has 2"},
		{[]*Index{vec}, Query{Mode: Vector}, ErrDimensionMismatch, "needs a query vector"},
		{[]*Index{vec}, Query{Mode: "semantic"}, nil, `unknown search mode "semantic"`},
	} {
		_, err := Search(tc.idx, tc.q)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: error %v, want %v saying %q", tc.q, err, tc.want, tc.msg)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Keyword, "keyword": Keyword, "vector": Vector, "hybrid": Hybrid} {
		if got, err := ParseMode(in); got != want || err != nil {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	_, err := ParseMode("Fuzzy")
	if err == nil || !strings.Contains(err.Error(), `"keyword", "vector" or "hybrid"`) {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestNewIndex(t *testing.T) {
	chunks := []string{"Hello, hello WORLD", "the of and", ""}
	ix := NewIndex(chunks, nil)
	chunks[0] = "changed"
	if ix.Len() != 3 || ix.Chunk(0) != "Hello, hello WORLD" || ix.HasVectors() {
		t.Errorf("Len %d, Chunk(0) %q, HasVectors %v", ix.Len(), ix.Chunk(0), ix.HasVectors())
	}
	if ix.lens[0] != 3 || ix.lens[1] != 0 || ix.total != 3 || len(ix.terms) != 2 {
		t.Errorf("lens %v total %d terms %v", ix.lens, ix.total, ix.terms)
	}
	if ix.SizeBytes() < len("Hello, hello WORLD") {
		t.Errorf("SizeBytes %d", ix.SizeBytes())
	}
	if !NewIndex(nil, [][]float32{}).HasVectors() {
		t.Errorf("an empty index built with embeddings has vectors")
	}
	for name, f := range map[string]func(){
		"count":  func() { NewIndex([]string{"a", "b"}, [][]float32{{1}}) },
		"ragged": func() { NewIndex([]string{"a", "b"}, [][]float32{{1, 2}, {1}}) },
		"empty":  func() { NewIndex([]string{"a"}, [][]float32{{}}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewIndex did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestAnalyzer(t *testing.T) {
	var got []string
	var an analyzer
	an.terms("The Ferry's ÉTÉ café, naïve 42x 日本語と東京 한국어 नमस्ते a-b", func(t []byte) { got = append(got, string(t)) })
	want := []string{"ferry", "s", "été", "café", "naïve", "42x", "日本", "本語", "語と", "と東", "東京", "한국", "국어", "नमस्ते", "b"}
	if !slices.Equal(got, want) {
		t.Errorf("terms %q\n want %q", got, want)
	}
}

func checkSorted(t *testing.T, hits []Hit) {
	t.Helper()
	for i, h := range hits {
		if h.Score < 0 || h.Score > 1 || math.IsNaN(h.Score) {
			t.Errorf("hit %d: score %v out of [0,1]", i, h.Score)
		}
		if i > 0 && better(h, hits[i-1]) {
			t.Errorf("hits %d and %d are out of order: %v", i-1, i, hits)
		}
	}
}

func hitsNear(got, want []Hit) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Doc != want[i].Doc || got[i].Chunk != want[i].Chunk || math.Abs(got[i].Score-want[i].Score) > 1e-6 {
			return false
		}
	}
	return true
}

// TestConcurrentUse runs the shared tokenizer and one index from several
// goroutines, for the race detector.
func TestConcurrentUse(t *testing.T) {
	text := proseText(77, 3000)
	ix := NewIndex(Split(text, Strategy{200, 50}), nil)
	want := Split(text, Strategy{300, 100})
	wantHits, _ := Search([]*Index{ix}, Query{Text: "ferry harbour", Limit: 5})
	wantTokens := CountTokens(text)
	errs := make(chan string, 8)
	for range 4 {
		go func() {
			switch {
			case !slices.Equal(Split(text, Strategy{300, 100}), want):
				errs <- "Split differs"
			case CountTokens(text) != wantTokens:
				errs <- "CountTokens differs"
			default:
				hits, _ := Search([]*Index{ix}, Query{Text: "ferry harbour", Limit: 5})
				if !slices.Equal(hits, wantHits) {
					errs <- "Search differs"
					return
				}
				errs <- ""
			}
		}()
	}
	for range 4 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
