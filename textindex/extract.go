package textindex

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrUnsupported is wrapped by every error Extract returns. The message after
// it says what was wrong, for the user (it becomes last_error).
var ErrUnsupported = errors.New("unsupported file")

const supportedKinds = "plain text, Markdown, JSON, CSV and other text files"

type format int

const (
	formatUnknown format = iota // decide by sniffing the content
	formatText
	formatJSON
	formatCSV
	formatTSV
)

// Extract decodes a file's bytes as text: plain text, Markdown, JSON, CSV,
// TSV and other text/* types. The format comes from the MIME type; where
// that is generic (none, text/plain, application/octet-stream or unknown),
// from the file name's extension; failing both, from sniffing the content.
//
//   - A UTF-8 byte order mark is dropped; UTF-16 with a byte order mark is
//     converted to UTF-8.
//   - JSON must be valid, and is returned as it is.
//   - CSV (and TSV) rows become one line each, "header: value" pairs joined
//     by ", ", so header names are searchable: "name: Ada, year: 1815".
//     Empty cells are left out. If the file does not parse as CSV, its text
//     is returned as it is.
//   - Binary content (a NUL byte, invalid UTF-8, a binary MIME type such as
//     image/png or application/pdf, or content that sniffs as binary) gives an
//     error wrapping ErrUnsupported that says what was found.
//
// Empty input gives "" and no error.
func Extract(filename, mimeType string, data []byte) (string, error) {
	if len(data) == 0 {
		return "", nil
	}
	name := filename
	if name == "" {
		name = "file"
	}
	mt := mediaType(mimeType)
	if isBinaryMIME(mt) {
		return "", fmt.Errorf("%w: %s has type %s; only %s can be indexed", ErrUnsupported, name, mt, supportedKinds)
	}
	data, err := decodeText(name, data)
	if err != nil {
		return "", err
	}

	f := formatOfMIME(mt)
	if f == formatUnknown || f == formatText {
		if g := formatOfExt(filename); g != formatUnknown {
			f = g
		}
	}
	if f == formatUnknown {
		if sniffed := mediaType(http.DetectContentType(data)); !strings.HasPrefix(sniffed, "text/") {
			return "", fmt.Errorf("%w: %s does not look like text (its content sniffs as %s); only %s can be indexed",
				ErrUnsupported, name, sniffed, supportedKinds)
		}
		f = formatText
	}

	switch f {
	case formatJSON:
		var v json.RawMessage
		if err := json.Unmarshal(data, &v); err != nil {
			return "", fmt.Errorf("%w: %s is not valid JSON: %s", ErrUnsupported, name, jsonErrorText(err))
		}
	case formatCSV, formatTSV:
		comma := ','
		if f == formatTSV {
			comma = '\t'
		}
		if text, ok := csvText(data, comma); ok {
			return text, nil
		}
	}
	return string(data), nil
}

// mediaType returns mimeType's type/subtype in lower case, without
// parameters, or "" if there is none.
func mediaType(mimeType string) string {
	mt, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		// Parameters that fail to parse do not change what the type is.
		mt, _, _ = strings.Cut(mimeType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt
}

// isBinaryMIME reports whether mt is a type we know is not text, so a file
// declared as one is refused even if its bytes would pass as text.
// application/octet-stream is not here: it means "unknown", so the extension
// and the content decide. Structured types with a +xml or +json suffix
// (image/svg+xml) are text.
func isBinaryMIME(mt string) bool {
	if strings.HasSuffix(mt, "+xml") || strings.HasSuffix(mt, "+json") {
		return false
	}
	top, sub, _ := strings.Cut(mt, "/")
	switch top {
	case "image", "audio", "video", "font":
		return true
	case "application":
	default:
		return false
	}
	switch sub {
	case "pdf", "zip", "gzip", "x-gzip", "x-tar", "x-bzip2", "x-xz", "zstd", "x-7z-compressed",
		"x-rar-compressed", "vnd.rar", "wasm", "x-executable", "x-sharedlib", "java-archive",
		"msword", "vnd.ms-powerpoint", "x-sqlite3", "vnd.sqlite3", "x-protobuf", "x-parquet",
		"vnd.apache.parquet":
		return true
	}
	// Office Open XML and OpenDocument files are zip archives. Not
	// vnd.ms-excel: browsers on Windows send it for .csv files.
	return strings.HasPrefix(sub, "vnd.openxmlformats-officedocument.") ||
		strings.HasPrefix(sub, "vnd.oasis.opendocument.")
}

func formatOfMIME(mt string) format {
	switch mt {
	case "text/csv", "application/csv", "text/comma-separated-values":
		return formatCSV
	case "text/tab-separated-values":
		return formatTSV
	case "application/json":
		return formatJSON
	case "application/xml", "application/javascript", "application/x-javascript",
		"application/ecmascript", "application/typescript", "application/x-typescript",
		"application/yaml", "application/x-yaml", "application/toml", "application/sql",
		"application/x-sh", "application/x-shellscript", "application/x-ndjson",
		"application/jsonl", "application/x-tex", "application/rtf":
		return formatText
	}
	switch {
	case strings.HasSuffix(mt, "+json"):
		return formatJSON
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+xml"):
		return formatText
	}
	return formatUnknown
}

// formatOfExt knows only the extensions whose format needs parsing or that
// are text by definition; others are left to the content sniffer.
func formatOfExt(filename string) format {
	switch strings.ToLower(path.Ext(strings.ReplaceAll(filename, `\`, "/"))) {
	case ".json":
		return formatJSON
	case ".csv":
		return formatCSV
	case ".tsv", ".tab":
		return formatTSV
	case ".txt", ".text", ".md", ".markdown", ".mdx", ".rst", ".log":
		return formatText
	}
	return formatUnknown
}

// decodeText strips a UTF-8 byte order mark, converts UTF-16 with one, and
// refuses what is not UTF-8 text.
func decodeText(name string, data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		data = data[3:]
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}), bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return decodeUTF16(name, data)
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, fmt.Errorf("%w: %s is binary, not text: it has a NUL byte at offset %d%s; only %s can be indexed",
			ErrUnsupported, name, i, sniffHint(data), supportedKinds)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: %s is not UTF-8 text: invalid byte at offset %d%s; only %s can be indexed",
			ErrUnsupported, name, firstInvalidUTF8(data), sniffHint(data), supportedKinds)
	}
	return data, nil
}

func decodeUTF16(name string, data []byte) ([]byte, error) {
	if len(data)%2 != 0 {
		return nil, fmt.Errorf("%w: %s starts with a UTF-16 byte order mark but has an odd number of bytes",
			ErrUnsupported, name)
	}
	big := data[0] == 0xFE
	units := make([]uint16, 0, len(data)/2-1)
	for i := 2; i < len(data); i += 2 {
		if big {
			units = append(units, uint16(data[i])<<8|uint16(data[i+1]))
		} else {
			units = append(units, uint16(data[i+1])<<8|uint16(data[i]))
		}
	}
	// Binary data that happens to start with FF FE decodes to unpaired
	// surrogates and control characters; real UTF-16 text has neither.
	for i := 0; i < len(units); i++ {
		switch u := units[i]; {
		case u >= 0xD800 && u < 0xDC00 && i+1 < len(units) && units[i+1] >= 0xDC00 && units[i+1] < 0xE000:
			i++
		case u >= 0xD800 && u < 0xE000:
			return nil, fmt.Errorf("%w: %s starts like UTF-16 text but has an unpaired surrogate at offset %d",
				ErrUnsupported, name, 2+2*i)
		}
	}
	out := make([]byte, 0, len(units))
	for _, r := range utf16.Decode(units) {
		out = utf8.AppendRune(out, r)
	}
	if bytes.IndexByte(out, 0) >= 0 {
		return nil, fmt.Errorf("%w: %s is UTF-16 with a NUL character, so binary, not text", ErrUnsupported, name)
	}
	if mt := mediaType(http.DetectContentType(out)); !strings.HasPrefix(mt, "text/") {
		return nil, fmt.Errorf("%w: %s starts like UTF-16 text but its content sniffs as %s", ErrUnsupported, name, mt)
	}
	return out, nil
}

// sniffHint names what the content looks like, when the sniffer knows.
func sniffHint(data []byte) string {
	mt := mediaType(http.DetectContentType(data))
	if mt == "" || mt == "application/octet-stream" || strings.HasPrefix(mt, "text/") {
		return ""
	}
	return fmt.Sprintf(" (the content looks like %s)", mt)
}

func firstInvalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%v (at byte %d)", syn, syn.Offset)
	}
	return err.Error()
}

// csvText renders CSV rows as "header: value" lines. It reports false if the
// data does not parse, so the caller keeps the raw text.
func csvText(data []byte, comma rune) (string, bool) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = comma
	r.FieldsPerRecord = -1 // ragged rows are common; missing cells are just empty
	header, err := r.Read()
	if err != nil {
		return "", false
	}
	for i, h := range header {
		header[i] = oneLine(h)
	}
	var sb strings.Builder
	sb.Grow(len(data) + len(data)/2)
	rows := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", false
		}
		rows++
		n := 0
		for i, v := range rec {
			v = oneLine(v)
			if v == "" {
				continue
			}
			if n > 0 {
				sb.WriteString(", ")
			}
			n++
			if i < len(header) && header[i] != "" {
				sb.WriteString(header[i])
			} else {
				fmt.Fprintf(&sb, "column %d", i+1)
			}
			sb.WriteString(": ")
			sb.WriteString(v)
		}
		if n > 0 {
			sb.WriteByte('\n')
		}
	}
	if rows == 0 {
		return strings.Join(header, ", ") + "\n", true
	}
	return sb.String(), true
}

// oneLine trims a cell and folds its line breaks, so each row stays one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "\r\n") {
		s = strings.Join(strings.Fields(s), " ")
	}
	return s
}
