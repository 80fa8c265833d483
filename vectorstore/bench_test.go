package vectorstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/lru"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/textindex"
)

// BenchmarkVectorStoreSearch searches a store of 100 files of about 100
// chunks each (about 10,000 chunks of 100 tokens) through the whole service
// layer: the store record, the completed-files index, the attribute filter,
// the index cache and the ranking. It runs on the embedded store and on
// Redis + S3 (start them with scripts/test.sh).
//
//	CI=1 scripts/test.sh -run '^$' -bench VectorStoreSearch -benchtime 200x -count 3 ./vectorstore/
func BenchmarkVectorStoreSearch(b *testing.B) {
	var o testsvc.StoreOptions
	for _, name := range o.Names() {
		b.Run(name, func(b *testing.B) {
			s := testsvc.Open(b, name, o)
			benchmarkSearch(b, newFixture(b, s.Meta, s.Blobs))
		})
	}
}

func benchmarkSearch(b *testing.B, f *fixture) {
	ctx := context.Background()
	vs := f.newStore(b, StoreParams{})
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 20000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%05d", i)
	}
	const files, chunksPerFile, tokens = 100, 100, 100
	word := func() string { // Zipf-like: common words often, rare words rarely
		return vocab[int(float64(len(vocab))*rng.Float64()*rng.Float64()*rng.Float64())]
	}
	// Words per file for chunksPerFile chunks of BPE tokens (a word is
	// several tokens).
	var sample strings.Builder
	for range 2000 {
		sample.WriteString(word() + " ")
	}
	wordsPerFile := chunksPerFile * tokens * 2000 / textindex.CountTokens(sample.String())
	var batch []AttachParams
	for i := range files {
		var sb strings.Builder
		for range wordsPerFile {
			sb.WriteString(word())
			sb.WriteByte(' ')
		}
		id := f.upload(b, fmt.Sprintf("doc%03d.txt", i), sb.String())
		batch = append(batch, AttachParams{FileID: id, Attributes: map[string]any{"group": float64(i % 4)},
			Chunking: Chunking{MaxTokens: tokens, OverlapTokens: 0}})
	}
	if _, err := f.svc.CreateFileBatch(ctx, vs.ID, batch); err != nil {
		b.Fatal(err)
	}
	f.drain(b)
	total := 0
	page, err := f.svc.ListVectorStoreFiles(ctx, vs.ID, PageParams{Limit: 100})
	if err != nil || len(page.Data) != files {
		b.Fatalf("list = %d, %v", len(page.Data), err)
	}
	for _, file := range page.Data {
		c, err := f.svc.loadChunks(ctx, vs.ID, file.ID)
		if err != nil {
			b.Fatal(err)
		}
		total += len(c.Texts)
	}
	b.Logf("%d files, %d chunks", files, total)
	if total < 9000 || total > 11000 {
		b.Fatalf("%d chunks, want about 10,000", total)
	}
	query := SearchParams{Query: []string{vocab[7] + " " + vocab[4321] + " " + vocab[15000]}, MaxNumResults: 10}
	check := func() {
		res, err := f.svc.SearchVectorStore(ctx, vs.ID, query)
		if err != nil || len(res.Data) == 0 {
			b.Fatalf("search = %d results, %v", len(res.Data), err)
		}
	}
	b.Run("warm", func(b *testing.B) {
		check() // fills the cache
		for b.Loop() {
			check()
		}
	})
	b.Run("filtered", func(b *testing.B) {
		q := query
		q.Filters = []byte(`{"type":"eq","key":"group","value":1}`)
		for b.Loop() {
			if _, err := f.svc.SearchVectorStore(ctx, vs.ID, q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			f.svc.cache = lru.New[*textindex.Index](f.svc.cfg.VectorCacheSize)
			check()
		}
	})
}
