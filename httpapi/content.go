package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
)

// content serves files' bytes, the native and the OpenAI routes alike.
type content struct {
	reg *registry.Registry
	// presign, when set, is how long the URLs of presigned redirects work;
	// 0: ferryd streams every download.
	presign time.Duration
}

// serve streams a file with Range, ETag, Last-Modified and the conditional
// headers, or redirects to storage; errors go out through writeErr (native
// or OpenAI).
func (c *content) serve(w http.ResponseWriter, r *http.Request, file registry.File, contentType string,
	writeErr func(http.ResponseWriter, *http.Request, error)) {
	etag := etagOf(file)
	modified := file.CreatedAt.UTC().Truncate(time.Second)
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Last-Modified", modified.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	setDigests(h, file.Checksums)
	safeServing(h, file, contentType)
	if notModified(r, etag, modified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if c.presign > 0 && r.Method == http.MethodGet && c.redirect(w, r, file, contentType) {
		return
	}

	rangeHeader := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag && ir != h.Get("Last-Modified") {
		rangeHeader = "" // the client's partial copy is stale: send it all
	}
	rng, err := parseRange(rangeHeader, file.Bytes)
	switch {
	case errors.Is(err, errUnsatisfiable):
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", file.Bytes))
		writeErr(w, r, registry.ErrRange.New("range %q lies outside the file's %d bytes", rangeHeader, file.Bytes))
		return
	case err != nil:
		writeErr(w, r, errcode.ErrInvalidRequest.New("%v", err))
		return
	}

	status, length := http.StatusOK, file.Bytes
	var brng *bucket.Range
	if rng != nil {
		status, length = http.StatusPartialContent, rng.length
		brng = &bucket.Range{Offset: rng.start, Length: rng.length}
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rng.start, rng.start+rng.length-1, file.Bytes))
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead || length == 0 {
		w.WriteHeader(status)
		return
	}
	body, got, err := c.reg.Open(r.Context(), file, brng) // refuses an object that is not the record's version
	if err != nil {
		for _, k := range []string{"Content-Range", "Content-Length", "Content-Disposition"} {
			h.Del(k)
		}
		writeErr(w, r, err)
		return
	}
	defer body.Close()
	if got.ETag != file.ETag || got.Bytes != file.Bytes {
		// Storage held a replacement not yet published, and Open published
		// it: the headers above describe the old version.
		body.Close()
		h.Del("Content-Range")
		c.serve(w, r, got, contentType, writeErr)
		return
	}
	w.WriteHeader(status)
	send(w, r, body)
}

// setDigests announces the whole file's checksums (RFC 9530's Repr-Digest
// describes the whole file even on a 206), and its CRC32C as S3 sends it.
func setDigests(h http.Header, c *registry.Checksums) {
	if d := c.ReprDigest(); d != "" {
		h.Set("Repr-Digest", d)
	}
	if c != nil && c.CRC32C != "" {
		h.Set("X-Amz-Checksum-Crc32c", c.CRC32C)
	}
}

// etagOf is the ETag a file is served with: its storage's, else one made
// of its size and time.
func etagOf(file registry.File) string {
	if file.ETag == "" {
		return fmt.Sprintf(`"%x-%x"`, file.Bytes, file.CreatedAt.UnixNano())
	}
	return `"` + strings.Trim(file.ETag, `"`) + `"`
}

// send copies a download's body; a failure mid-body can only cut the
// connection.
func send(w http.ResponseWriter, r *http.Request, body io.Reader) {
	if r.TLS == nil && isFile(body) {
		_, _ = io.Copy(w, body) // through the ReaderFrom/WriterTo paths to sendfile: no copy through ferryd
		return
	}
	// A large buffer, and no ReaderFrom/WriterTo shortcuts (which would copy
	// in 32 KiB steps): the bytes cross ferryd once, in few syscalls.
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	_, _ = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{body}, *bp)
}

// isFile reports whether r, under any wrappers that Unwrap, is a whole
// file on disk (the filesystem storage's body for a download without Range).
func isFile(r io.Reader) bool {
	for {
		switch v := r.(type) {
		case *os.File:
			return true
		case interface{ Unwrap() io.ReadCloser }:
			r = v.Unwrap()
		default:
			return false
		}
	}
}

// redirect answers 307 to a presigned URL of the file's storage, which
// serves Range itself, under the type and disposition ferryd would send. It
// reports false, having written nothing, when the storage has no URLs (the
// filesystem) or signing failed: the caller then streams the file.
func (c *content) redirect(w http.ResponseWriter, r *http.Request, file registry.File, contentType string) bool {
	url, err := c.reg.PresignGet(r.Context(), file, c.presign, bucket.PresignOptions{
		ContentType: contentType, ContentDisposition: w.Header().Get("Content-Disposition")})
	if err != nil || url == "" {
		return false
	}
	h := w.Header()
	h.Set("Location", url)
	h.Set("Cache-Control", "no-store") // the URL expires; ask again
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// safeServing keeps a stored file from running as part of Ferry's origin:
// browsers must not sniff a type, and a type a browser would render as a
// page or script (HTML, SVG, XML, JavaScript) goes out as a download, in a
// sandbox should it be opened anyway.
func safeServing(h http.Header, file registry.File, contentType string) {
	h.Set("X-Content-Type-Options", "nosniff")
	if !activeType(contentType) {
		return
	}
	h.Set("Content-Security-Policy", "sandbox")
	if h.Get("Content-Disposition") == "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(file.Key)}))
	}
}

// activeType reports whether browsers execute or render content of this
// type with the serving origin's privileges.
func activeType(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return true // unparseable: assume the worst
	}
	switch {
	case t == "text/html", t == "application/xhtml+xml", t == "image/svg+xml",
		t == "text/xml", t == "application/xml", strings.HasSuffix(t, "+xml"),
		strings.Contains(t, "javascript"), strings.Contains(t, "ecmascript"),
		t == "text/xsl":
		return true
	}
	return false
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// notModified applies If-None-Match, then If-Modified-Since (RFC 9110 §13.2.2).
func notModified(r *http.Request, etag string, modified time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == etag {
				return true
			}
		}
		return false
	}
	if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil {
		return !modified.After(ims)
	}
	return false
}
