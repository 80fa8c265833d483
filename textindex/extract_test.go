package textindex

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa")

func TestExtract(t *testing.T) {
	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, tc := range []struct {
		name, filename, mime string
		data                 []byte
		want                 string // exact text, when wantErr is ""
		wantErr              string // substrings of the error, "|"-separated
	}{
		{name: "empty", filename: "a.txt", mime: "text/plain", data: nil, want: ""},
		{name: "txt", filename: "a.txt", mime: "text/plain; charset=utf-8", data: []byte("hello\nworld\n"), want: "hello\nworld\n"},
		{name: "md", filename: "README.md", mime: "text/markdown", data: []byte("# Title\n\n*x*"), want: "# Title\n\n*x*"},
		{name: "md by extension", filename: "notes.md", mime: "application/octet-stream", data: []byte("# T"), want: "# T"},
		{name: "bom", filename: "a.txt", mime: "text/plain", data: []byte("\xEF\xBB\xBFhello"), want: "hello"},
		{name: "utf-16le", filename: "a.txt", mime: "", data: []byte("\xFF\xFEh\x00i\x00\xE5\x65"), want: "hi日"},
		{name: "utf-16le surrogate pair", filename: "a.txt", mime: "", data: []byte("\xFF\xFE\x3D\xD8\x00\xDE"), want: "😀"},
		{name: "utf-16 lone surrogate", filename: "a.bin", mime: "", data: []byte("\xFF\xFEa\x00\x00\xD8"), wantErr: "unpaired surrogate at offset 4"},
		{name: "utf-16 control characters", filename: "a.bin", mime: "", data: []byte("\xFF\xFE\x01\x00\x02\x00"), wantErr: "sniffs as application/octet-stream"},
		{name: "utf-16 odd length", filename: "a.txt", mime: "", data: []byte("\xFF\xFEa"), wantErr: "odd number of bytes"},
		{name: "utf-16be", filename: "a.txt", mime: "", data: []byte("\xFE\xFF\x00h\x00i"), want: "hi"},
		{name: "json", filename: "a.json", mime: "application/json", data: []byte(`{"a": [1, 2]}`), want: `{"a": [1, 2]}`},
		{name: "json with bom", filename: "a.json", mime: "", data: []byte("\xEF\xBB\xBF[1]"), want: "[1]"},
		{name: "json suffix type", filename: "x", mime: "application/ld+json", data: []byte(`{}`), want: `{}`},
		{name: "invalid json", filename: "bad.json", mime: "application/json", data: []byte(`{"a": }`),
			wantErr: "bad.json is not valid JSON|invalid character '}'|at byte 7"},
		{name: "invalid json by extension", filename: "bad.json", mime: "text/plain", data: []byte(`{"a": 1`),
			wantErr: "not valid JSON"},
		{name: "csv", filename: "people.csv", mime: "text/csv",
			data: []byte("name,year\nAda,1815\n\"Hopper, Grace\",1906\n"),
			want: "name: Ada, year: 1815\nname: Hopper, Grace, year: 1906\n"},
		{name: "csv from windows", filename: "people.csv", mime: "application/vnd.ms-excel",
			data: []byte("name,year\r\nAda,1815\r\n"), want: "name: Ada, year: 1815\n"},
		{name: "csv ragged and empty cells", filename: "x.csv", mime: "",
			data: []byte("a,,c\n1,2\n,,3,4\n\"multi\nline\",x\n"),
			want: "a: 1, column 2: 2\nc: 3, column 4: 4\na: multi line, column 2: x\n"},
		{name: "csv header only", filename: "x.csv", mime: "text/csv", data: []byte("name,year\n"), want: "name, year\n"},
		{name: "csv that does not parse", filename: "x.csv", mime: "text/csv", data: []byte("a,b\n1,\"2\n"), want: "a,b\n1,\"2\n"},
		{name: "tsv", filename: "x.tsv", mime: "", data: []byte("k\tv\nx\ty\n"), want: "k: x, v: y\n"},
		{name: "unknown type, text content", filename: "Makefile", mime: "application/octet-stream", data: []byte("all:\n\tgo build\n"), want: "all:\n\tgo build\n"},
		{name: "svg is text", filename: "x.svg", mime: "image/svg+xml", data: []byte("<svg/>"), want: "<svg/>"},
		{name: "png declared", filename: "cat.png", mime: "image/png", data: pngHeader,
			wantErr: "cat.png has type image/png|only plain text, Markdown, JSON, CSV"},
		{name: "png undeclared", filename: "cat", mime: "application/octet-stream", data: pngHeader,
			wantErr: "cat is binary, not text: it has a NUL byte at offset 8 (the content looks like image/png)"},
		{name: "png named txt", filename: "cat.txt", mime: "text/plain", data: pngHeader, wantErr: "NUL byte"},
		{name: "pdf declared", filename: "a.pdf", mime: "application/pdf", data: []byte("%PDF-1.7\n"), wantErr: "a.pdf has type application/pdf"},
		{name: "docx", filename: "a.docx", mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
			data: []byte("PK\x03\x04"), wantErr: "has type application/vnd.openxmlformats"},
		{name: "zip undeclared", filename: "a.zip", mime: "", data: []byte("PK\x03\x04\x14\x00\x00\x00"), wantErr: "looks like application/zip"},
		{name: "random bytes", filename: "blob", mime: "", data: random, wantErr: "blob is"},
		{name: "nul in text", filename: "a.txt", mime: "text/plain", data: []byte("abc\x00def"), wantErr: "a.txt is binary, not text: it has a NUL byte at offset 3"},
		{name: "latin-1", filename: "a.txt", mime: "text/plain", data: []byte("caf\xe9"), wantErr: "a.txt is not UTF-8 text: invalid byte at offset 3"},
		{name: "control bytes", filename: "data", mime: "", data: []byte("\x01\x02\x03\x04abc"), wantErr: "does not look like text|application/octet-stream"},
		{name: "no name", filename: "", mime: "image/jpeg", data: []byte("x"), wantErr: "file has type image/jpeg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Extract(tc.filename, tc.mime, tc.data)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not wrap ErrUnsupported (text %q)", err, got)
			}
			for _, want := range strings.Split(tc.wantErr, "|") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestExtractCSVHeadersSearchable(t *testing.T) {
	text, err := Extract("inventors.csv", "text/csv", []byte("name,birth_year\nAda Lovelace,1815\nAlan Turing,1912\n"))
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(Split(text, Auto()), nil)
	hits, err := Search([]*Index{ix}, Query{Text: "birth_year", Limit: 5})
	if err != nil || len(hits) != 1 {
		t.Fatalf("search for a header name: %v, %v", hits, err)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("a.txt", "text/plain", []byte("hello"))
	f.Add("a.json", "application/json", []byte(`{"a":1}`))
	f.Add("a.csv", "text/csv", []byte("a,b\n1,2\n"))
	f.Add("a.csv", "", []byte("a,\"b\n"))
	f.Add("x", "image/png", pngHeader)
	f.Add("x", "", []byte("\xFF\xFEa\x00"))
	f.Add("x", "text/plain; charset=\"", []byte("\xEF\xBB\xBF"))
	f.Fuzz(func(t *testing.T, name, mime string, data []byte) {
		text, err := Extract(name, mime, data)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v does not wrap ErrUnsupported", err)
			}
			return
		}
		if !utf8.ValidString(text) {
			t.Fatalf("Extract returned invalid UTF-8")
		}
	})
}
