package textindex

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer/codec"
)

// OpenAI's limits for the static chunking strategy, and its auto strategy.
const (
	minChunkTokens     = 100
	maxChunkTokens     = 4096
	autoChunkTokens    = 800
	autoOverlapTokens  = 400
	maxOverlapFraction = 2 // overlap <= max/2
)

// Strategy is a chunking strategy in tokens.
type Strategy struct{ MaxTokens, OverlapTokens int }

// Auto is OpenAI's "auto" chunking strategy: 800 tokens, 400 overlap.
func Auto() Strategy {
	return Strategy{MaxTokens: autoChunkTokens, OverlapTokens: autoOverlapTokens}
}

// Validate checks s against OpenAI's rules for a static strategy. Its
// messages name the API fields, so they can be returned to the client as is.
func (s Strategy) Validate() error {
	if s.MaxTokens < minChunkTokens || s.MaxTokens > maxChunkTokens {
		return fmt.Errorf("max_chunk_size_tokens must be between %d and %d, got %d",
			minChunkTokens, maxChunkTokens, s.MaxTokens)
	}
	if limit := s.MaxTokens / maxOverlapFraction; s.OverlapTokens < 0 || s.OverlapTokens > limit {
		return fmt.Errorf("chunk_overlap_tokens must be between 0 and %d (half of max_chunk_size_tokens %d), got %d",
			limit, s.MaxTokens, s.OverlapTokens)
	}
	return nil
}

// encoder is cl100k_base, the encoding of OpenAI's embedding models
// (text-embedding-3-*, ada-002), so that a chunk of N tokens here is N tokens
// to the model that embeds it. Its ranks are Go source in the tokenizer
// module, so they are in the binary; building it takes about 20 ms, once.
var encoder = sync.OnceValue(codec.NewCl100kBase)

// segmentBytes bounds how much text is tokenized in one call: the regexp
// engine works on a []rune copy of its input, four bytes per character.
const segmentBytes = 64 << 10

// CountTokens counts text's tokens in OpenAI's cl100k_base encoding (tiktoken),
// with the ranks compiled in. Invalid UTF-8 is counted as U+FFFD, as tiktoken
// does.
func CountTokens(text string) int {
	n := 0
	forSegments(withoutDEL(strings.ToValidUTF8(text, "\uFFFD")), func(seg string) {
		c, _ := encoder().Count(seg) // only fails in strict UTF-8 mode, not used here
		n += c
	})
	return n
}

// withoutDEL replaces DEL (U+007F), which the tokenizer library's split
// pattern skips so that it got no token at all, by U+001F, a control
// character of the same length that tiktoken tokenizes alike.
func withoutDEL(text string) string { return strings.ReplaceAll(text, "\x7f", "\x1f") }

// tokenBounds returns the byte offsets of text's token boundaries, from 0 to
// len(text) inclusive. text must be valid UTF-8 without DEL, so the tokens
// add up to it byte for byte; should the library skip some text again, the
// skipped bytes count as one more token rather than shifting every offset
// after them.
func tokenBounds(text string) []int {
	bounds := make([]int, 1, len(text)/4+2) // English averages 4 bytes a token
	base := 0
	forSegments(text, func(seg string) {
		_, toks, _ := encoder().Encode(seg)
		off := 0
		for _, t := range toks {
			if !strings.HasPrefix(seg[off:], t) {
				i := strings.Index(seg[off:], t)
				if i < 0 {
					break
				}
				off += i
				bounds = append(bounds, base+off)
			}
			off += len(t)
			bounds = append(bounds, base+off)
		}
		if off < len(seg) {
			bounds = append(bounds, base+len(seg))
		}
		base += len(seg)
	})
	return bounds
}

// forSegments calls fn with consecutive pieces of text of about segmentBytes,
// each cut where a pre-token starts, so the pieces tokenize exactly as the
// whole does (except on a very long run with no such place, see cutAfter).
func forSegments(text string, fn func(string)) {
	for len(text) > segmentBytes {
		cut := cutAfter(text, segmentBytes)
		fn(text[:cut])
		text = text[cut:]
	}
	if text != "" {
		fn(text)
	}
}

// cutAfter returns the first pre-token boundary at or after from, looking
// one more segment ahead, or else the next rune boundary.
func cutAfter(text string, from int) int {
	limit := min(len(text), from+segmentBytes)
	for p := from; p < limit; p++ {
		if utf8.RuneStart(text[p]) && preTokenStart(text, p) {
			return p
		}
	}
	p := from
	for p < len(text) && !utf8.RuneStart(text[p]) {
		p++
	}
	return p
}

// preTokenStart reports whether cl100k_base's pre-tokenizer surely starts a
// piece at byte p of text, judging by the runes around p. It is conservative:
// false means "not sure". The cases follow the split pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// in which no piece runs from a newline into a non-space, from a non-space
// into " x", from a letter into a non-letter or from a digit into a
// non-digit. The pattern has no look-behind, so text cut at such a place
// tokenizes on each side as it does whole.
func preTokenStart(text string, p int) bool {
	if p <= 0 || p >= len(text) {
		return true
	}
	a, _ := utf8.DecodeLastRuneInString(text[:p])
	c, size := utf8.DecodeRuneInString(text[p:])
	switch {
	case a == '\n' || a == '\r':
		return !unicode.IsSpace(c)
	case unicode.IsSpace(a):
		return false
	case c == ' ':
		if p+size >= len(text) {
			return false
		}
		next, _ := utf8.DecodeRuneInString(text[p+size:])
		return !unicode.IsSpace(next)
	case unicode.IsLetter(a):
		return !unicode.IsLetter(c) && !unicode.IsSpace(c)
	case unicode.IsNumber(a):
		return !unicode.IsNumber(c) && !unicode.IsSpace(c)
	}
	return false
}

// snapTokens is how far, in tokens, a window edge may move back to land
// where a pre-token starts: then re-counting a chunk gives the window's count,
// and words are not cut in two. Text with no such place nearby (long runs of
// CJK without punctuation) is cut at the nearest character boundary instead.
const snapTokens = 16

// Split cuts text into windows of at most s.MaxTokens tokens, consecutive
// windows sharing at least s.OverlapTokens tokens (a few more where an edge
// moved back to a word boundary, see snapTokens). Edges are always on UTF-8
// character boundaries, so every chunk is valid UTF-8; invalid input is first
// cleaned as CountTokens does. Chunks are not trimmed: without their overlaps
// they add up to the text. Empty or whitespace-only text, and whitespace-only
// windows, give no chunks; text of at most s.MaxTokens tokens gives one chunk
// equal to it.
//
// s should be valid (see Validate). Otherwise a MaxTokens below 1 means Auto,
// and the overlap is clamped to 0..MaxTokens/2.
func Split(text string, s Strategy) []string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	spans := splitSpans(text, s)
	if spans == nil {
		return nil
	}
	chunks := make([]string, len(spans))
	for i, sp := range spans {
		chunks[i] = text[sp.start:sp.end]
	}
	return chunks
}

type span struct{ start, end int } // byte offsets into the text

// splitSpans is Split by byte offsets; text must be valid UTF-8.
func splitSpans(text string, s Strategy) []span {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	if s.MaxTokens < 1 {
		s = Auto()
	}
	s.OverlapTokens = max(0, min(s.OverlapTokens, s.MaxTokens/maxOverlapFraction))

	text = withoutDEL(text) // same offsets, see withoutDEL
	b := tokenBounds(text)
	n := len(b) - 1
	if n <= s.MaxTokens {
		return []span{{0, len(text)}}
	}
	var spans []span
	start, prevEnd := 0, 0
	for {
		// Each window ends past the last one, or it would add nothing.
		end := n
		if start+s.MaxTokens < n {
			end = snapBack(text, b, start+s.MaxTokens, max(start, prevEnd)+1)
		}
		prevEnd = end
		if strings.TrimSpace(text[b[start]:b[end]]) != "" {
			spans = append(spans, span{b[start], b[end]})
		}
		if end == n {
			return spans
		}
		next := end
		if s.OverlapTokens > 0 {
			next = snapBack(text, b, max(end-s.OverlapTokens, start+1), start+1)
		}
		start = next
	}
}

// snapBack returns the token index at or below i, and not below lo, nearest
// to i whose boundary starts a pre-token (looking back at most snapTokens)
// or, failing that, a character. If even that fails (one character is more
// tokens than the window), it moves forward to the next character boundary.
func snapBack(text string, b []int, i, lo int) int {
	i = max(i, lo)
	for j := i; j >= max(lo, i-snapTokens); j-- {
		if j == len(b)-1 || utf8.RuneStart(text[b[j]]) && preTokenStart(text, b[j]) {
			return j
		}
	}
	for j := i; j >= lo; j-- {
		if utf8.RuneStart(text[b[j]]) {
			return j
		}
	}
	for j := i + 1; ; j++ {
		if j == len(b)-1 || utf8.RuneStart(text[b[j]]) {
			return j
		}
	}
}
