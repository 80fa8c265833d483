package vectorstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/errcode"
)

// chunking_strategy is raw client JSON: an accepted one is auto (the zero
// value) or a static strategy the chunker accepts, and writing it back as
// the static object parses to the same strategy. A refused one is a 400.
func FuzzParseChunking(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{"type":"auto"}`, `{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":400}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":100,"chunk_overlap_tokens":0}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":4096,"chunk_overlap_tokens":2048}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":99,"chunk_overlap_tokens":0}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":4097,"chunk_overlap_tokens":0}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":401}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":-1}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":800}}`, `{"type":"static"}`, `{"type":"static","static":null}`,
		`{"type":"static","static":{"max_chunk_size_tokens":1e3,"chunk_overlap_tokens":0}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":9223372036854775807,"chunk_overlap_tokens":0}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":"800","chunk_overlap_tokens":"0"}}`,
		`{"type":"other"}`, `{"type":"AUTO"}`, `{}`, `[]`, `"auto"`, `{"type":"auto"} {}`, `{"type":"auto","type":"static"}`,
		`{"TYPE":"auto"}`, `{"type":"static","static":{"max_chunk_size_tokens":800,"chunk_overlap_tokens":400,"max_chunk_size_tokens":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := ParseChunking(raw)
		if err != nil {
			if !errcode.Is(err, errcode.ErrInvalidRequest) {
				t.Fatalf("%q: error %v is not INVALID_REQUEST", raw, err)
			}
			return
		}
		if c == (Chunking{}) {
			return // auto
		}
		if err := c.strategy().Validate(); err != nil {
			t.Fatalf("%q: accepted %+v, which the chunker refuses: %v", raw, c, err)
		}
		if c.OverlapTokens < 0 || c.OverlapTokens > c.MaxTokens/2 {
			t.Fatalf("%q: accepted overlap %d for max %d", raw, c.OverlapTokens, c.MaxTokens)
		}
		back := fmt.Sprintf(`{"type":"static","static":{"max_chunk_size_tokens":%d,"chunk_overlap_tokens":%d}}`, c.MaxTokens, c.OverlapTokens)
		if again, err := ParseChunking(json.RawMessage(back)); err != nil || again != c {
			t.Fatalf("%q → %+v does not parse back from %s: %+v, %v", raw, c, back, again, err)
		}
	})
}

// Found by FuzzParseChunking: a static strategy of 0 tokens was taken as
// auto (the zero Chunking), with any overlap, instead of refused.
func TestParseChunkingStaticZeroIsRefused(t *testing.T) {
	for _, raw := range []string{
		`{"type":"static","static":{"max_chunk_size_tokens":0,"chunk_overlap_tokens":0}}`,
		`{"type":"static","static":{"max_chunk_size_tokens":0,"chunk_overlap_tokens":1}}`,
	} {
		if c, err := ParseChunking(json.RawMessage(raw)); !errcode.Is(err, errcode.ErrInvalidRequest) || !strings.Contains(err.Error(), "max_chunk_size_tokens") {
			t.Errorf("ParseChunking(%s) = %+v, %v; want INVALID_REQUEST about max_chunk_size_tokens", raw, c, err)
		}
	}
}
