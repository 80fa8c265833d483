package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// chunkPos is what an append's headers say about where its bytes go.
type chunkPos struct {
	offset int64 // -1: the client did not say; use the session's offset
	total  int64 // -1: not stated; else must equal the session's size
	length int64 // -1: unknown
}

// parseChunkHeaders reads Upload-Offset or Content-Range (bytes N-M/T) and
// Content-Length. Both offset headers may be sent only if they agree.
func parseChunkHeaders(h http.Header, contentLength int64) (chunkPos, error) {
	pos := chunkPos{offset: -1, total: -1, length: contentLength}
	if v := h.Get("Upload-Offset"); v != "" {
		n, err := parseNonNegative(v)
		if err != nil {
			return pos, fmt.Errorf("Upload-Offset %q must be a non-negative integer", v)
		}
		pos.offset = n
	}
	v := h.Get("Content-Range")
	if v == "" {
		return pos, nil
	}
	first, last, total, err := parseContentRange(v)
	if err != nil {
		return pos, err
	}
	if pos.offset >= 0 && pos.offset != first {
		return pos, fmt.Errorf("Upload-Offset %d and Content-Range start %d disagree; send one of them", pos.offset, first)
	}
	n := last - first + 1
	if contentLength >= 0 && contentLength != n {
		return pos, fmt.Errorf("Content-Range %q covers %d bytes but Content-Length is %d", v, n, contentLength)
	}
	pos.offset, pos.total, pos.length = first, total, n
	return pos, nil
}

// parseContentRange parses "bytes first-last/total" as sent on an upload.
func parseContentRange(v string) (first, last, total int64, err error) {
	bad := func(why string) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: %s; use bytes FIRST-LAST/TOTAL, e.g. bytes 0-1023/4096", v, why)
	}
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad("the unit must be bytes")
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("the total is missing")
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return bad("the range is not FIRST-LAST")
	}
	if first, err = parseNonNegative(a); err != nil {
		return bad("FIRST is not a non-negative integer")
	}
	if last, err = parseNonNegative(b); err != nil {
		return bad("LAST is not a non-negative integer")
	}
	if total, err = parseNonNegative(tot); err != nil {
		return bad("TOTAL is not a non-negative integer (\"*\" is not accepted on uploads)")
	}
	if last < first {
		return bad("LAST is before FIRST")
	}
	if last >= total {
		return bad("LAST must be below TOTAL")
	}
	return first, last, total, nil
}

// byteRange is one satisfiable range of a download.
type byteRange struct{ start, length int64 }

// errUnsatisfiable: the range starts at or past the end of the content.
var errUnsatisfiable = fmt.Errorf("range not satisfiable")

// parseRange reads a download's Range header against size. It returns nil
// (serve everything) for no header, a non-bytes unit or several ranges,
// which RFC 9110 lets a server ignore; errUnsatisfiable when the range lies
// wholly past the end; and an error for a malformed header.
func parseRange(v string, size int64) (*byteRange, error) {
	if v == "" {
		return nil, nil
	}
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return nil, nil
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, fmt.Errorf("Range %q is not bytes=FIRST-LAST, bytes=FIRST- or bytes=-SUFFIX", v)
	}
	if a == "" { // suffix: the last b bytes
		n, err := parseNonNegative(b)
		if err != nil {
			return nil, fmt.Errorf("Range %q: bad suffix length", v)
		}
		if n == 0 || size == 0 {
			return nil, errUnsatisfiable
		}
		n = min(n, size)
		return &byteRange{start: size - n, length: n}, nil
	}
	first, err := parseNonNegative(a)
	if err != nil {
		return nil, fmt.Errorf("Range %q: bad first byte", v)
	}
	if first >= size {
		return nil, errUnsatisfiable
	}
	last := size - 1
	if b != "" {
		if last, err = parseNonNegative(b); err != nil || last < first {
			return nil, fmt.Errorf("Range %q: bad last byte", v)
		}
		last = min(last, size-1)
	}
	return &byteRange{start: first, length: last - first + 1}, nil
}

// parseNonNegative accepts plain decimal digits only (no sign, no spaces).
func parseNonNegative(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, fmt.Errorf("not a number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
