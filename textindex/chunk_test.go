package textindex

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStrategyValidate(t *testing.T) {
	for _, tc := range []struct {
		s       Strategy
		wantErr string // substring; "" means valid
	}{
		{Auto(), ""},
		{Strategy{99, 0}, "max_chunk_size_tokens must be between 100 and 4096, got 99"},
		{Strategy{100, 0}, ""},
		{Strategy{100, 50}, ""},
		{Strategy{100, 51}, "chunk_overlap_tokens must be between 0 and 50"},
		{Strategy{4096, 2048}, ""},
		{Strategy{4096, 2049}, "chunk_overlap_tokens must be between 0 and 2048"},
		{Strategy{4097, 0}, "max_chunk_size_tokens must be between 100 and 4096, got 4097"},
		{Strategy{801, 400}, ""}, // 801/2 rounds down to 400
		{Strategy{801, 401}, "got 401"},
		{Strategy{800, -1}, "chunk_overlap_tokens must be between 0 and 400"},
		{Strategy{-5, 0}, "max_chunk_size_tokens"},
		{Strategy{0, 0}, "max_chunk_size_tokens"},
	} {
		err := tc.s.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.s, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%+v: error %v, want one containing %q", tc.s, err, tc.wantErr)
		}
	}
	if a := Auto(); a.MaxTokens != 800 || a.OverlapTokens != 400 {
		t.Errorf("Auto() = %+v", a)
	}
}

func TestCountTokens(t *testing.T) {
	// Counts from OpenAI's tiktoken for cl100k_base (its cookbook lists the
	// last three).
	for text, want := range map[string]int{
		"":                   0,
		"hello world":        2,
		"tiktoken is great!": 6,
		"2 + 2 = 4":          7,
		"お誕生日おめでとう":          9,
	} {
		if got := CountTokens(text); got != want {
			t.Errorf("CountTokens(%q) = %d, want %d", text, got, want)
		}
	}
	// The tokenizer library's split pattern skips DEL; tiktoken gives it a
	// token, and so do we.
	if got := CountTokens("\x7f"); got != 1 {
		t.Errorf("CountTokens(DEL) = %d, want 1", got)
	}
	text := "keep\x7fthe DEL " + strings.Repeat("word ", 200)
	if chunks := Split(text, Strategy{100, 10}); !strings.HasPrefix(chunks[0], "keep\x7fthe DEL") {
		t.Errorf("Split changed DEL: %q", chunks[0][:20])
	}
	ids, _, _ := encoder().Encode("hello world")
	if !slices.Equal(ids, []uint{15339, 1917}) {
		t.Errorf("hello world = %v, want cl100k_base ids [15339 1917]", ids)
	}
}

// TestSegmentsTokenizeAsWhole checks that cutting long text into segments
// (to bound the tokenizer's memory) changes no count.
func TestSegmentsTokenizeAsWhole(t *testing.T) {
	for name, text := range map[string]string{
		"prose":    proseText(1, 60000),
		"japanese": japaneseText(2, 50000),
		"emoji":    emojiText(3, 30000, true),
	} {
		if len(text) <= 2*segmentBytes {
			t.Fatalf("%s: %d bytes is too short to need segments", name, len(text))
		}
		whole, _ := encoder().Count(text)
		if got := CountTokens(text); got != whole {
			t.Errorf("%s: segmented count %d, whole %d", name, got, whole)
		}
		if b := tokenBounds(text); len(b)-1 != whole || b[len(b)-1] != len(text) {
			t.Errorf("%s: %d bounds ending at %d, want %d ending at %d", name, len(b)-1, b[len(b)-1], whole, len(text))
		}
	}
}

// TestPreTokenStart checks the rule Split and the segmenter rely on: cutting
// text where preTokenStart says a pre-token starts tokenizes both sides as
// the whole.
func TestPreTokenStart(t *testing.T) {
	alphabet := []string{"a", "b", "Z", "é", "ß", "1", "2", "3", " ", " ", "  ", "\n", "\r\n", "\t",
		".", ",", "'s", "'", "(", ")", "-", "日", "本", "。", "😀", "\u0301", "\u00a0", "don't", "word", "ing"}
	r := rand.New(rand.NewPCG(7, 7))
	checked := 0
	for range 400 {
		var sb strings.Builder
		for range 5 + r.IntN(30) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		text := sb.String()
		whole := CountTokens(text)
		for p := 1; p < len(text); p++ {
			if !utf8.RuneStart(text[p]) || !preTokenStart(text, p) {
				continue
			}
			checked++
			if got := CountTokens(text[:p]) + CountTokens(text[p:]); got != whole {
				t.Fatalf("cut %q | %q: %d tokens, whole %d", text[:p], text[p:], got, whole)
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d cuts checked", checked)
	}
}

func TestSplitSmallAndEmpty(t *testing.T) {
	for _, text := range []string{"", " ", "\n\t \r\n", strings.Repeat(" \n", 5000)} {
		if got := Split(text, Auto()); got != nil {
			t.Errorf("Split(%q) = %q, want nil", text[:min(len(text), 10)], got)
		}
	}
	for _, text := range []string{"hello", "  hello world \n", "日本語", proseText(5, 300)} {
		got := Split(text, Auto())
		if len(got) != 1 || got[0] != text {
			t.Errorf("Split of %d tokens gave %d chunks, want the text itself", CountTokens(text), len(got))
		}
	}
	// Exactly MaxTokens tokens is still one chunk; one more is two.
	text := strings.Repeat(" hello", 100)
	if n := CountTokens(text); n != 100 {
		t.Fatalf("setup: %d tokens", n)
	}
	if got := Split(text, Strategy{100, 0}); len(got) != 1 {
		t.Errorf("100 tokens at max 100: %d chunks", len(got))
	}
	if got := Split(text+" hello", Strategy{100, 0}); len(got) != 2 {
		t.Errorf("101 tokens at max 100: %d chunks", len(got))
	}
}

func TestSplitAutoChunkCount(t *testing.T) {
	text := proseText(11, 4150)
	n := CountTokens(text)
	if n < 4900 || n > 5100 {
		t.Fatalf("setup: the text has %d tokens, want about 5000", n)
	}
	// Windows start every 800-400 tokens; the last one ends at n:
	// ceil((n-400)/400) = 12 for n in 4900..5100. Edges snapping back to word
	// boundaries move each step by a few tokens, not enough to change that.
	if got := Split(text, Auto()); len(got) != 12 {
		t.Errorf("%d tokens with auto: %d chunks, want 12", n, len(got))
	}
}

func TestSplitProperties(t *testing.T) {
	texts := map[string]string{
		"prose":      proseText(21, 9000),
		"japanese":   japaneseText(22, 6000),
		"emoji mix":  emojiText(23, 2000, true),
		"emoji only": emojiText(24, 1500, false),
		"no spaces":  strings.Repeat("abcdefghij0123456789", 700),
		"code":       strings.Repeat("func f(x int) int {\n\tif x > 0 {\n\t\treturn x * 2 // double\n\t}\n\treturn -x\n}\n\n", 150),
	}
	strategies := []Strategy{Auto(), {100, 0}, {100, 50}, {257, 100}, {4096, 2048}}
	for name, text := range texts {
		for _, s := range strategies {
			checkSplit(t, name, text, s)
		}
	}
}

func checkSplit(t *testing.T, name, text string, s Strategy) {
	t.Helper()
	spans := splitSpans(text, s)
	chunks := Split(text, s)
	if len(chunks) != len(spans) || len(chunks) == 0 {
		t.Fatalf("%s %+v: %d chunks, %d spans", name, s, len(chunks), len(spans))
	}
	// Where a pre-token boundary was near, an edge is on one and re-counting
	// gives the window's count exactly. Text with none (a long run of emoji
	// is one pre-token) is cut between characters, and BPE may merge across
	// the cut differently; allow a token either way.
	slack := 0
	if name == "emoji only" {
		slack = 1
	}
	rebuilt := chunks[0]
	for i, c := range chunks {
		if !utf8.ValidString(c) {
			t.Fatalf("%s %+v: chunk %d is not valid UTF-8", name, s, i)
		}
		n := CountTokens(c)
		if n > s.MaxTokens+slack {
			t.Errorf("%s %+v: chunk %d has %d tokens", name, s, i, n)
		}
		if i < len(chunks)-1 && n < s.MaxTokens-2*snapTokens {
			t.Errorf("%s %+v: chunk %d has only %d tokens", name, s, i, n)
		}
		if i == 0 {
			continue
		}
		prev, cur := spans[i-1], spans[i]
		if cur.start <= prev.start || cur.start > prev.end || cur.end <= prev.end {
			t.Fatalf("%s %+v: span %d %v does not follow %v", name, s, i, cur, prev)
		}
		shared := text[cur.start:prev.end]
		ov := CountTokens(shared)
		if ov < s.OverlapTokens-slack || ov > s.OverlapTokens+2*snapTokens {
			t.Errorf("%s %+v: chunks %d and %d share %d tokens", name, s, i-1, i, ov)
		}
		// The end of chunk i-1's tokens are the start of chunk i's.
		if slack == 0 {
			a, _, _ := encoder().Encode(chunks[i-1])
			b, _, _ := encoder().Encode(c)
			if ov > len(a) || ov > len(b) || !slices.Equal(a[len(a)-ov:], b[:ov]) {
				t.Errorf("%s %+v: the last %d tokens of chunk %d are not the first of chunk %d", name, s, ov, i-1, i)
			}
		}
		rebuilt += c[len(shared):]
	}
	if rebuilt != text {
		t.Errorf("%s %+v: chunks without their overlaps do not rebuild the text", name, s)
	}
}

func TestSplitInvalidUTF8(t *testing.T) {
	text := "caf\xe9 " + strings.Repeat("word ", 300) + "\xff\xfe end"
	for _, c := range Split(text, Strategy{100, 20}) {
		if !utf8.ValidString(c) {
			t.Fatalf("chunk %q is not valid UTF-8", c)
		}
	}
}

func TestSplitClampsInvalidStrategy(t *testing.T) {
	text := proseText(31, 2000)
	if got, want := Split(text, Strategy{}), Split(text, Auto()); !slices.Equal(got, want) {
		t.Errorf("zero Strategy: %d chunks, auto gives %d", len(got), len(want))
	}
	for _, c := range Split(text, Strategy{MaxTokens: 120, OverlapTokens: 500}) {
		if n := CountTokens(c); n > 120 {
			t.Fatalf("chunk of %d tokens", n)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("hello world, this is a test.", 100, 10)
	f.Add("日本語の文章。😀👩‍💻 emoji", 100, 50)
	f.Add("\xff\xfe\x00abc", 1, 0)
	f.Add("\x7f0\xff", 0, -6)
	f.Add("a \n\n \t b\x7f\x7f c", 2, 1)
	f.Add("0A\"0", 1, 183) // a window inside the last one
	f.Fuzz(func(t *testing.T, text string, maxTokens, overlap int) {
		s := Strategy{maxTokens%300 + 1, overlap % 200}
		valid := strings.ToValidUTF8(text, "\uFFFD")
		spans := splitSpans(valid, s)
		chunks := Split(text, s)
		if len(chunks) != len(spans) {
			t.Fatalf("%d chunks, %d spans", len(chunks), len(spans))
		}
		covered := 0
		for i, c := range chunks {
			sp := spans[i]
			if !utf8.ValidString(c) || c != valid[sp.start:sp.end] || sp.start >= sp.end {
				t.Fatalf("chunk %d %q is not valid UTF-8 or not the text at %v", i, c, sp)
			}
			if i > 0 && (sp.start <= spans[i-1].start || sp.end <= spans[i-1].end) {
				t.Fatalf("span %v does not follow %v", sp, spans[i-1])
			}
			// Only whitespace-only windows may be left out.
			if gap := valid[covered:max(covered, sp.start)]; strings.TrimSpace(gap) != "" {
				t.Fatalf("text %q before chunk %d is in no chunk", gap, i)
			}
			covered = max(covered, sp.end)
		}
		if rest := valid[covered:]; strings.TrimSpace(rest) != "" {
			t.Fatalf("text %q at the end is in no chunk", rest)
		}
	})
}
