package textindex

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// The benchmark corpus: 10,000 chunks of about 200 words in 20 indexes, the
// words drawn Zipf-like from the common English words plus 20,000 made-up
// ones, so posting lists are long for common terms and short for rare ones,
// as in real text.
const (
	benchIndexes       = 20
	benchChunksPer     = 500
	benchWordsPerChunk = 200
)

var benchVocab = sync.OnceValue(func() []string {
	r := rand.New(rand.NewPCG(42, 42))
	syll := strings.Fields("ka lo mi ra te su vo ne pa li do ru se ba tor mel vin dar quo sen")
	seen := map[string]bool{}
	vocab := append([]string(nil), englishWords...)
	for _, w := range vocab {
		seen[w] = true
	}
	for len(vocab) < len(englishWords)+20000 {
		var sb strings.Builder
		for range 2 + r.IntN(3) {
			sb.WriteString(syll[r.IntN(len(syll))])
		}
		if w := sb.String(); !seen[w] {
			seen[w] = true
			vocab = append(vocab, w)
		}
	}
	return vocab
})

var benchChunks = sync.OnceValue(func() [][]string {
	vocab := benchVocab()
	r := rand.New(rand.NewPCG(7, 7))
	z := rand.NewZipf(r, 1.05, 3, uint64(len(vocab)-1))
	out := make([][]string, benchIndexes)
	for d := range out {
		for range benchChunksPer {
			var sb strings.Builder
			for i := range benchWordsPerChunk {
				if i > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(vocab[z.Uint64()])
				if r.IntN(12) == 0 {
					sb.WriteByte('.')
				}
			}
			out[d] = append(out[d], sb.String())
		}
	}
	return out
})

func benchIndexSet(dim int) []*Index {
	var idx []*Index
	r := rand.New(rand.NewPCG(9, 9))
	for _, chunks := range benchChunks() {
		var emb [][]float32
		if dim > 0 {
			emb = make([][]float32, len(chunks))
			for i := range emb {
				emb[i] = make([]float32, dim)
				for j := range emb[i] {
					emb[i][j] = float32(r.NormFloat64())
				}
			}
		}
		idx = append(idx, NewIndex(chunks, emb))
	}
	return idx
}

// benchQuery has a common, a middling and a rare term (vocabulary ranks 30,
// 400 and 5,000).
func benchQuery() string {
	v := benchVocab()
	return v[30] + " " + v[400] + " " + v[5000]
}

func BenchmarkNewIndex10k(b *testing.B) {
	chunks := benchChunks()
	b.ReportAllocs()
	size := 0
	for b.Loop() {
		size = 0
		for _, c := range chunks {
			size += NewIndex(c, nil).SizeBytes()
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}

func BenchmarkSearch10k(b *testing.B) {
	idx := benchIndexSet(0)
	q := Query{Text: benchQuery(), Limit: 10}
	hits, _ := Search(idx, q)
	if len(hits) != 10 {
		b.Fatalf("%d hits", len(hits))
	}
	all, _ := Search(idx, Query{Text: q.Text})
	b.ReportAllocs()
	for b.Loop() {
		Search(idx, q)
	}
	b.ReportMetric(float64(len(all)), "matches")
}

// BenchmarkSearch10kVector is vector search over the same chunks with
// 1536-dimension embeddings (text-embedding-3-small's size).
func BenchmarkSearch10kVector(b *testing.B) {
	idx := benchIndexSet(1536)
	qv := make([]float32, 1536)
	for i := range qv {
		qv[i] = float32(i%7) - 3
	}
	for _, mode := range []Mode{Vector, Hybrid} {
		b.Run(string(mode), func(b *testing.B) {
			q := Query{Text: benchQuery(), Vector: qv, Mode: mode, Limit: 10}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Search(idx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSplit tokenizes and splits 1 MiB of prose with the auto strategy.
func BenchmarkSplit(b *testing.B) {
	text := proseText(3, 180000)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Split(text, Auto())
	}
}
