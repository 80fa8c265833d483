// Package textindex is a throwaway stand-in with the API of
// github.com/ferryhq/ferry/textindex, so the vector-store code compiles and
// runs before that package lands on main. DELETE before merging.
package textindex

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

var ErrUnsupported = errors.New("unsupported file type")

func Extract(filename, mimeType string, data []byte) (string, error) {
	switch strings.ToLower(path.Ext(filename)) {
	case ".txt", ".md", ".markdown", ".json", ".jsonl", ".csv", "":
	default:
		if !strings.HasPrefix(mimeType, "text/") && mimeType != "application/json" {
			return "", fmt.Errorf("%w: %s (%s)", ErrUnsupported, filename, mimeType)
		}
	}
	if !utf8.Valid(data) || strings.ContainsRune(string(data), 0) {
		return "", fmt.Errorf("%w: %s is binary", ErrUnsupported, filename)
	}
	return string(data), nil
}

type Strategy struct{ MaxTokens, OverlapTokens int }

func Auto() Strategy { return Strategy{800, 400} }

func (s Strategy) Validate() error {
	if s.MaxTokens < 100 || s.MaxTokens > 4096 {
		return fmt.Errorf("max_chunk_size_tokens %d must be from 100 to 4096", s.MaxTokens)
	}
	if s.OverlapTokens < 0 || s.OverlapTokens > s.MaxTokens/2 {
		return fmt.Errorf("chunk_overlap_tokens %d must be from 0 to half of max_chunk_size_tokens (%d)", s.OverlapTokens, s.MaxTokens/2)
	}
	return nil
}

func CountTokens(text string) int { return len(strings.Fields(text)) }

func Split(text string, s Strategy) []string {
	words := strings.Fields(text)
	if len(words) == 0 {
		return nil
	}
	if len(words) <= s.MaxTokens {
		return []string{text}
	}
	var out []string
	step := s.MaxTokens - s.OverlapTokens
	for i := 0; i < len(words); i += step {
		out = append(out, strings.Join(words[i:min(i+s.MaxTokens, len(words))], " "))
		if i+s.MaxTokens >= len(words) {
			break
		}
	}
	return out
}

type Index struct {
	chunks []string
	terms  []map[string]int
	lens   []int
	vecs   [][]float32
	size   int
}

func terms(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func NewIndex(chunks []string, embeddings [][]float32) *Index {
	ix := &Index{chunks: chunks, vecs: embeddings}
	for _, c := range chunks {
		m := map[string]int{}
		ts := terms(c)
		for _, t := range ts {
			m[t]++
		}
		ix.terms = append(ix.terms, m)
		ix.lens = append(ix.lens, len(ts))
		ix.size += len(c) * 2
	}
	for _, v := range embeddings {
		ix.size += 4 * len(v)
	}
	return ix
}

func (ix *Index) Len() int           { return len(ix.chunks) }
func (ix *Index) Chunk(i int) string { return ix.chunks[i] }
func (ix *Index) HasVectors() bool   { return len(ix.vecs) == len(ix.chunks) && len(ix.vecs) > 0 }
func (ix *Index) SizeBytes() int     { return ix.size + 64 }

type Mode string

const (
	Keyword Mode = "keyword"
	Vector  Mode = "vector"
	Hybrid  Mode = "hybrid"
)

func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "keyword":
		return Keyword, nil
	case "vector", "hybrid":
		return Mode(s), nil
	}
	return "", fmt.Errorf("search_mode %q: use keyword, vector or hybrid", s)
}

type Query struct {
	Text      string
	Vector    []float32
	Mode      Mode
	Limit     int
	Threshold float64
}

type Hit struct {
	Doc, Chunk int
	Score      float64
}

func Search(indexes []*Index, q Query) ([]Hit, error) {
	var hits []Hit
	qt := terms(q.Text)
	n, total := 0, 0
	df := map[string]int{}
	for _, ix := range indexes {
		for i := range ix.chunks {
			n++
			total += ix.lens[i]
			for _, t := range qt {
				if ix.terms[i][t] > 0 {
					df[t]++
				}
			}
		}
	}
	if n == 0 {
		return []Hit{}, nil
	}
	avg := float64(total) / float64(n)
	for d, ix := range indexes {
		if q.Mode != Keyword && !ix.HasVectors() {
			return nil, errors.New("index has no vectors")
		}
		for i := range ix.chunks {
			var kw float64
			for _, t := range qt {
				tf := float64(ix.terms[i][t])
				if tf == 0 {
					continue
				}
				idf := math.Log(1 + (float64(n)-float64(df[t])+0.5)/(float64(df[t])+0.5))
				kw += idf * tf * 2.2 / (tf + 1.2*(0.25+0.75*float64(ix.lens[i])/avg))
			}
			kw = kw / (kw + 1)
			var score float64
			switch q.Mode {
			case Keyword:
				score = kw
			case Vector, Hybrid:
				var dot, a, b float64
				for j, x := range ix.vecs[i] {
					dot += float64(x) * float64(q.Vector[j])
					a += float64(x) * float64(x)
					b += float64(q.Vector[j]) * float64(q.Vector[j])
				}
				cos := 0.0
				if a > 0 && b > 0 {
					cos = (dot/math.Sqrt(a*b) + 1) / 2
				}
				score = cos
				if q.Mode == Hybrid {
					score = (cos + kw) / 2
				}
			}
			if score <= 0 || score < q.Threshold || (q.Mode == Keyword && kw == 0) {
				continue
			}
			hits = append(hits, Hit{d, i, score})
		}
	}
	sort.SliceStable(hits, func(a, b int) bool { return hits[a].Score > hits[b].Score })
	if q.Limit > 0 && len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	return hits, nil
}

func ValidateAttributes(attrs map[string]any) error {
	if len(attrs) > 16 {
		return fmt.Errorf("attributes has %d keys; at most 16 are allowed", len(attrs))
	}
	for k, v := range attrs {
		if len(k) > 64 {
			return fmt.Errorf("attribute key %q is longer than 64 characters", k)
		}
		switch v := v.(type) {
		case string:
			if len(v) > 512 {
				return fmt.Errorf("attribute %q is longer than 512 characters", k)
			}
		case float64, bool, json.Number, int:
		default:
			return fmt.Errorf("attribute %q must be a string, a number or a boolean", k)
		}
	}
	return nil
}

type Filter interface {
	Match(attrs map[string]any) bool
}

type cmp struct {
	op, key string
	val     any
}

func (c cmp) Match(a map[string]any) bool {
	v, ok := a[c.key]
	if !ok {
		return false
	}
	switch c.op {
	case "eq":
		return v == c.val
	case "ne":
		return v != c.val
	}
	x, ok1 := v.(float64)
	y, ok2 := c.val.(float64)
	if !ok1 || !ok2 {
		return false
	}
	switch c.op {
	case "gt":
		return x > y
	case "gte":
		return x >= y
	case "lt":
		return x < y
	case "lte":
		return x <= y
	}
	return false
}

type compound struct {
	or bool
	fs []Filter
}

func (c compound) Match(a map[string]any) bool {
	for _, f := range c.fs {
		if f.Match(a) == c.or {
			return c.or
		}
	}
	return !c.or
}

func ParseFilter(raw json.RawMessage) (Filter, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var f struct {
		Type    string            `json:"type"`
		Key     string            `json:"key"`
		Value   any               `json:"value"`
		Filters []json.RawMessage `json:"filters"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("filters: %v", err)
	}
	switch f.Type {
	case "eq", "ne", "gt", "gte", "lt", "lte":
		return cmp{f.Type, f.Key, f.Value}, nil
	case "and", "or":
		c := compound{or: f.Type == "or"}
		for _, r := range f.Filters {
			sub, err := ParseFilter(r)
			if err != nil {
				return nil, err
			}
			c.fs = append(c.fs, sub)
		}
		return c, nil
	}
	return nil, fmt.Errorf("filters.type %q: use eq, ne, gt, gte, lt, lte, and or or", f.Type)
}
