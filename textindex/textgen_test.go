package textindex

import (
	"math/rand/v2"
	"strings"
)

// englishWords is a small vocabulary for realistic-looking prose: common
// words first, so a Zipf draw favours them as real text does.
var englishWords = strings.Fields(`the of and to in is that for it as was with be by on not he this are or
his from at which but have an they you were her she there been one all we their has would when if
so no will more can other about out into up them some could time these two may then do first any
my now such like our over man me even most made after also did many before must through back years
where much your way well down should because each just those people how too little state good very
make world still own see men work long get here between both life being under never day same another
know while last might us great old year off come since against go came right used take three
storage network upload session offset bucket object replica failure retry checksum latency
throughput partition cluster gateway archive ledger harbour ferry vessel cargo manifest tide
anchor voyage captain crew lantern compass orchard meadow granite willow falcon ember quartz`)

// proseText returns deterministic English-like prose of about words words,
// in sentences and paragraphs.
func proseText(seed uint64, words int) string {
	r := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(r, 1.1, 2, uint64(len(englishWords)-1))
	var sb strings.Builder
	sentence := 0
	for i := range words {
		w := englishWords[z.Uint64()]
		if sentence == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		} else {
			sb.WriteByte(' ')
		}
		sb.WriteString(w)
		sentence++
		if sentence > 6 && r.IntN(8) == 0 || i == words-1 {
			sb.WriteString([]string{".", ".", ".", "?", "!"}[r.IntN(5)])
			sentence = 0
			if r.IntN(6) == 0 {
				sb.WriteString("\n\n")
			} else if i != words-1 {
				sb.WriteByte(' ')
			}
		} else if r.IntN(15) == 0 {
			sb.WriteByte(',')
		} else if r.IntN(40) == 0 {
			sb.WriteString(" 19" + string(rune('0'+r.IntN(10))) + string(rune('0'+r.IntN(10))))
		}
	}
	return sb.String()
}

// japaneseText is Japanese prose with punctuation, about n characters.
func japaneseText(seed uint64, n int) string {
	parts := []string{"日本語", "の", "文章", "を", "分割", "します", "東京", "は", "大きな", "都市", "です",
		"ファイル", "検索", "が", "できる", "ように", "して", "います", "カタカナ", "ひらがな", "漢字"}
	r := rand.New(rand.NewPCG(seed, 2))
	var sb strings.Builder
	for sb.Len() < n*3 {
		for range 3 + r.IntN(6) {
			sb.WriteString(parts[r.IntN(len(parts))])
		}
		sb.WriteString([]string{"。", "、", "。\n"}[r.IntN(3)])
	}
	return sb.String()
}

// emojiText mixes emoji (several tokens each) with words and spaces, or
// only emoji.
func emojiText(seed uint64, n int, withWords bool) string {
	emoji := []string{"😀", "🚢", "👩‍💻", "🇯🇵", "🧭", "⚓", "🌊", "✨", "🙂", "🦀"}
	r := rand.New(rand.NewPCG(seed, 3))
	var sb strings.Builder
	for range n {
		sb.WriteString(emoji[r.IntN(len(emoji))])
		if withWords && r.IntN(3) == 0 {
			sb.WriteString(" " + englishWords[r.IntN(len(englishWords))] + " ")
		}
	}
	return sb.String()
}
