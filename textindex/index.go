package textindex

import (
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// Index is an immutable keyword (and optional vector) index over one file's
// chunks. Build it once with NewIndex; it is safe for concurrent searches.
// Search takes many Indexes and treats them as one collection.
type Index struct {
	chunks []string
	lens   []uint32 // terms per chunk, for BM25's length normalization
	total  int      // sum of lens

	// Postings of term t are postings[offs[terms[t]]:offs[terms[t]+1]], in
	// chunk order: one flat slice keeps the garbage collector's work small.
	terms    map[string]uint32
	offs     []uint32
	postings []posting

	dim     int
	vectors []float32 // len(chunks) rows of dim, each scaled to unit length (or all zero)

	size int
}

type posting struct{ chunk, tf uint32 }

// NewIndex indexes chunks for keyword search and, if embeddings is not nil,
// for vector search. embeddings[i] is chunk i's embedding; all must have the
// same, non-zero, length. A mismatch is a programming error and panics.
func NewIndex(chunks []string, embeddings [][]float32) *Index {
	if embeddings != nil && len(embeddings) != len(chunks) {
		panic(fmt.Sprintf("textindex: NewIndex got %d embeddings for %d chunks", len(embeddings), len(chunks)))
	}
	ix := &Index{
		chunks: slices.Clone(chunks),
		lens:   make([]uint32, len(chunks)),
		terms:  make(map[string]uint32),
	}
	ix.indexTerms()
	if embeddings != nil {
		ix.setVectors(embeddings)
	}
	ix.size = ix.footprint()
	return ix
}

// triple is one term's frequency in one chunk.
type triple struct{ term, chunk, tf uint32 }

// indexTerms builds the term dictionary, the chunk lengths and the
// postings: one pass collects (term, chunk, tf) triples; a counting sort by
// term then lays the postings out flat.
func (ix *Index) indexTerms() {
	var (
		triples []triple
		tf      []uint32 // by term id, for the current chunk
		seen    []uint32 // term ids with tf > 0 in the current chunk
		an      analyzer
	)
	for c, text := range ix.chunks {
		n := 0
		an.terms(text, func(term []byte) {
			n++
			id, ok := ix.terms[string(term)]
			if !ok {
				id = uint32(len(ix.terms))
				ix.terms[string(term)] = id
				tf = append(tf, 0)
			}
			if tf[id] == 0 {
				seen = append(seen, id)
			}
			tf[id]++
		})
		ix.lens[c] = uint32(n)
		ix.total += n
		for _, id := range seen {
			triples = append(triples, triple{id, uint32(c), tf[id]})
			tf[id] = 0
		}
		seen = seen[:0]
	}
	ix.layPostings(triples)
}

// layPostings sorts triples by term into offs and postings.
func (ix *Index) layPostings(triples []triple) {
	ix.offs = make([]uint32, len(ix.terms)+1)
	for _, t := range triples {
		ix.offs[t.term+1]++
	}
	for i := 1; i < len(ix.offs); i++ {
		ix.offs[i] += ix.offs[i-1]
	}
	ix.postings = make([]posting, len(triples))
	next := slices.Clone(ix.offs[:len(ix.offs)-1])
	for _, t := range triples {
		ix.postings[next[t.term]] = posting{t.chunk, t.tf}
		next[t.term]++
	}
}

// setVectors stores the chunks' embeddings as unit vectors, flat.
func (ix *Index) setVectors(embeddings [][]float32) {
	if len(embeddings) > 0 {
		ix.dim = len(embeddings[0])
		if ix.dim == 0 {
			panic("textindex: NewIndex got empty embeddings")
		}
	}
	ix.vectors = make([]float32, len(ix.chunks)*ix.dim)
	for i, e := range embeddings {
		if len(e) != ix.dim {
			panic(fmt.Sprintf("textindex: NewIndex got embedding %d of length %d, want %d", i, len(e), ix.dim))
		}
		unitInto(ix.vectors[i*ix.dim:(i+1)*ix.dim], e)
	}
}

// footprint estimates the index's memory in bytes, for the cache.
func (ix *Index) footprint() int {
	n := int(unsafe.Sizeof(*ix)) +
		len(ix.chunks)*int(unsafe.Sizeof("")) + 4*len(ix.lens) +
		4*len(ix.offs) + int(unsafe.Sizeof(posting{}))*len(ix.postings) + 4*len(ix.vectors)
	for _, c := range ix.chunks {
		n += len(c)
	}
	for t := range ix.terms {
		n += len(t) + mapEntryBytes
	}
	return n
}

// mapEntryBytes approximates a map[string]uint32 entry beyond its key's bytes:
// the string header, the value, control bytes and load-factor slack.
const mapEntryBytes = 32

// Len is the number of chunks.
func (ix *Index) Len() int { return len(ix.chunks) }

// Chunk returns chunk i's text.
func (ix *Index) Chunk(i int) string { return ix.chunks[i] }

// HasVectors reports whether the index was built with embeddings.
func (ix *Index) HasVectors() bool { return ix.vectors != nil }

// SizeBytes approximates the memory the index holds, chunk text included,
// for a cache bounded by bytes.
func (ix *Index) SizeBytes() int { return ix.size }

// unitInto writes v scaled to length 1 into dst, or leaves dst zero if v is
// zero (or not finite): such a vector is similar to nothing, cosine 0.
func unitInto(dst, v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		dst[i] = float32(float64(x) * inv)
	}
}
