package textindex

import (
	"unicode"
	"unicode/utf8"
)

// stopwords are dropped from chunks and queries. The list is tiny on
// purpose: BM25's idf already discounts common words, and dropping them
// mostly saves postings.
var stopwords = map[string]struct{}{
	"a": {}, "an": {}, "and": {}, "are": {}, "as": {}, "at": {}, "be": {}, "by": {}, "for": {},
	"from": {}, "in": {}, "is": {}, "it": {}, "of": {}, "on": {}, "or": {}, "that": {},
	"the": {}, "to": {}, "was": {}, "were": {}, "with": {},
}

// analyzer splits text into lower-case terms. A term is a run of letters,
// digits and combining marks (marks carry vowels in many scripts). Chinese,
// Japanese and Korean are written without spaces, so their runs become
// overlapping character pairs ("日本語" → "日本", "本語"), as Lucene's CJK
// analyzer does; a query for any two-character word then finds it.
type analyzer struct {
	buf []byte // the current term, reused
}

// terms calls emit for each term of text. The slice is only valid during
// the call.
func (a *analyzer) terms(text string, emit func(term []byte)) {
	a.buf = a.buf[:0]
	var prevCJK rune // last character of the current CJK run, or 0
	cjkRun := 0
	endCJK := func() {
		if cjkRun == 1 {
			emit(utf8.AppendRune(a.buf[:0], prevCJK))
		}
		prevCJK, cjkRun = 0, 0
	}
	endWord := func() {
		if len(a.buf) > 0 {
			if _, stop := stopwords[string(a.buf)]; !stop {
				emit(a.buf)
			}
			a.buf = a.buf[:0]
		}
	}
	for _, r := range text {
		switch {
		case isCJK(r):
			endWord()
			if cjkRun > 0 {
				emit(utf8.AppendRune(utf8.AppendRune(a.buf[:0], prevCJK), r))
			}
			prevCJK = r
			cjkRun++
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			endCJK()
			a.buf = utf8.AppendRune(a.buf, unicode.ToLower(r))
		default:
			endCJK()
			endWord()
		}
	}
	endCJK()
	endWord()
}

func isCJK(r rune) bool {
	return r >= 0x2E80 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r))
}
