package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
)

// Parallel download. A one-byte probe learns the file's size and ETag;
// then ranges of RangeSize bytes go out Parallel at once, each written at
// its offset in out. Every range asks for that ETag's version: If-Range,
// which ferryd honours by sending the whole file instead, and If-Match,
// which storage behind a presigned redirect honours with 412; the answer's
// own ETag is checked too. A file replaced meanwhile is thus noticed at
// the next range, and the download starts over instead of stitching two
// versions. Ranges land out of order, so only the run of bytes from the
// start that are all in (the prefix) can be kept for a later run.

// defaultRangeSize is a parallel download's bytes per request: 8 MiB, as
// the parts of aws s3 cp.
const defaultRangeSize = 8 << 20

// maxChanges bounds the restarts of a download whose file keeps being
// replaced under it.
const maxChanges = 5

var errChanged = errors.New("ferry: the file changed on the server during the download")

func (c *Client) downloadParallel(ctx context.Context, bucket, key string, out *os.File, o DownloadOptions) (string, error) {
	path := filePath(bucket, key) + ":content"
	st, err := out.Stat()
	if err != nil {
		return "", err
	}
	etag, have := o.ETag, min(o.Have, st.Size()) // Truncate would fill a shortfall with zeros
	if etag == "" {
		have = 0
	}
	for changes := 0; ; changes++ {
		tag, err := c.downloadRanges(ctx, path, out, etag, have, o)
		if !errors.Is(err, errChanged) {
			return tag, err
		}
		if changes == maxChanges {
			return tag, fmt.Errorf("%w, %d times in a row; giving up", err, changes+1)
		}
		etag, have = "", 0 // start over with whatever version the probe finds
	}
}

// downloadRanges fetches the file from byte have on, of version etag
// (empty: whichever the probe finds). On an error it leaves out cut to
// the prefix, and tells OnHave.
func (c *Client) downloadRanges(ctx context.Context, path string, out *os.File, etag string, have int64, o DownloadOptions) (string, error) {
	if err := out.Truncate(have); err != nil {
		return etag, err
	}
	total, etag, err := c.probeVersion(ctx, path, etag, o)
	if err != nil {
		return etag, err
	}
	if have > total {
		return etag, errChanged
	}
	rs := newRangeSet(have, total, o)
	err = inParallel(ctx, o.Parallel, rs.n, func(ctx context.Context, i int) error {
		from, to := rs.span(i)
		return c.fetchRange(ctx, path, out, from, to, etag, o.Retry, func(k int64) { rs.add(i, k) })
	})
	if err != nil {
		return etag, rs.keepPrefix(out, err)
	}
	st, err := out.Stat()
	if err == nil && st.Size() != total {
		err = fmt.Errorf("ferry: the download of %s holds %d bytes, not the file's %d", path, st.Size(), total)
	}
	return etag, err
}

// probeVersion learns the file's size and ETag, and adopts that ETag. On
// an error it returns etag as it was.
func (c *Client) probeVersion(ctx context.Context, path, etag string, o DownloadOptions) (int64, string, error) {
	total, tag, err := c.probe(ctx, path, etag, o.Retry)
	if err != nil {
		return 0, etag, err
	}
	if tag == "" {
		return 0, etag, fmt.Errorf("ferry: %s came without an ETag, so ranges of it cannot be checked to be of one version; download it without parallel ranges", path)
	}
	if tag != etag && o.OnETag != nil {
		o.OnETag(tag) // before any byte is written, so a resume never mixes versions
	}
	return total, tag, nil
}

// rangeSet is a parallel download's ranges from byte have on: the bytes in
// of each, and how many from the first are whole (the prefix).
type rangeSet struct {
	have, total, size int64
	n                 int
	progress          func(done, total int64)
	onHave            func(int64)

	mu    sync.Mutex
	got   []int64 // bytes in, of each range
	done  int64
	whole int // the ranges of the prefix
}

func newRangeSet(have, total int64, o DownloadOptions) *rangeSet {
	size := o.RangeSize
	if size <= 0 {
		size = defaultRangeSize
	}
	n := int((total - have + size - 1) / size)
	return &rangeSet{have: have, total: total, size: size, n: n, progress: o.Progress, onHave: o.OnHave,
		got: make([]int64, n), done: have}
}

func (r *rangeSet) rangeLen(i int) int64 { return min(r.size, r.total-r.have-int64(i)*r.size) }

// span is range i's first and last byte.
func (r *rangeSet) span(i int) (int64, int64) {
	from := r.have + int64(i)*r.size
	return from, from + r.rangeLen(i) - 1
}

// add counts k more bytes of range i in, and tells OnHave when they made
// the prefix grow.
func (r *rangeSet) add(i int, k int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[i] += k
	r.done += k
	if r.progress != nil {
		r.progress(r.done, r.total)
	}
	grew := false
	for r.whole < r.n && r.got[r.whole] == r.rangeLen(r.whole) {
		r.whole, grew = r.whole+1, true
	}
	if grew && r.onHave != nil {
		r.onHave(min(r.have+int64(r.whole)*r.size, r.total))
	}
}

// keepPrefix cuts out to the prefix once err has stopped every fetch, and
// tells OnHave. Bytes past the prefix may have gaps before them: dropping
// them leaves out holding only bytes a later run can go on from.
func (r *rangeSet) keepPrefix(out *os.File, err error) error {
	prefix := min(r.have+int64(r.whole)*r.size, r.total)
	if r.whole < r.n {
		prefix += r.got[r.whole]
	}
	if terr := out.Truncate(prefix); terr != nil {
		return errors.Join(err, terr)
	}
	if r.onHave != nil {
		r.onHave(prefix)
	}
	return err
}

// probe asks for the file's first byte, to learn its size and ETag. With
// etag set, the file must still be that version (else errChanged).
func (c *Client) probe(ctx context.Context, path, etag string, retry Retry) (int64, string, error) {
	for failures := 1; ; failures++ {
		body, total, tag, err := c.getRange(ctx, path, 0, 0, etag)
		if err == nil {
			if body != nil {
				_, _ = io.Copy(io.Discard, body) // so the connection is reused
				body.Close()
			}
			return total, tag, nil
		}
		if errors.Is(err, errChanged) {
			return 0, tag, err
		}
		if err := retry.sleep(ctx, failures, err); err != nil {
			return 0, tag, err
		}
	}
}

// fetchRange writes bytes from..to (inclusive) of version etag at their
// offsets in out; after a failure it asks only for what is still missing.
func (c *Client) fetchRange(ctx context.Context, path string, out *os.File, from, to int64, etag string, retry Retry, add func(int64)) error {
	for failures := 0; ; {
		body, _, _, err := c.getRange(ctx, path, from, to, etag)
		if err == nil {
			w := &rangeWriter{f: out, at: from, add: add}
			_, err = io.Copy(w, io.LimitReader(body, to-from+1))
			body.Close()
			if w.err != nil {
				return w.err // the disk's trouble: asking the server again cannot help
			}
			if w.at > from {
				failures = 0
			}
			from = w.at
			if err == nil && from <= to {
				err = io.ErrUnexpectedEOF
			}
			if err == nil {
				return nil
			}
		}
		if errors.Is(err, errChanged) {
			return err
		}
		failures++
		if err := retry.sleep(ctx, failures, err); err != nil {
			return err
		}
	}
}

// getRange asks for bytes first..last of the file, of version etag when it
// is set. It returns the body of an answer that is exactly that range
// (nil when the range starts at the end of the file: its size), the
// file's size and its ETag; errChanged when the file is another version.
func (c *Client) getRange(ctx context.Context, path string, first, last int64, etag string) (io.ReadCloser, int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, 0, "", err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
	if etag != "" {
		req.Header.Set("If-Range", etag)
		req.Header.Set("If-Match", etag)
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, 0, "", err
	}
	tag := resp.Header.Get("ETag")
	changed := etag != "" && tag != etag
	var a, b, total int64
	switch resp.StatusCode {
	case http.StatusPartialContent:
		_, err = fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total)
		if err == nil && !changed && a == first && b == min(last, total-1) {
			return resp.Body, total, tag, nil
		}
	case http.StatusRequestedRangeNotSatisfiable: // an empty file's probe
		_, err = fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes */%d", &total)
		if err == nil && !changed && total == first {
			resp.Body.Close()
			return nil, total, tag, nil
		}
	case http.StatusOK, http.StatusPreconditionFailed:
		changed = changed || etag != ""
	default:
		defer resp.Body.Close()
		return nil, 0, tag, decodeError(resp)
	}
	resp.Body.Close()
	if changed {
		return nil, 0, tag, errChanged
	}
	// An answer of another range than asked for: a server or proxy that
	// does not do Range. Status stays below 500 so it is not retried.
	return nil, 0, tag, &Error{Status: resp.StatusCode, Detail: fmt.Sprintf("asked for bytes %d-%d of %s, got %s %q",
		first, last, path, resp.Status, resp.Header.Get("Content-Range"))}
}

// rangeWriter writes at increasing offsets of f, reporting each write.
type rangeWriter struct {
	f   *os.File
	at  int64
	add func(int64)
	err error
}

func (w *rangeWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.at)
	w.at += int64(n)
	w.add(int64(n))
	w.err = err
	return n, err
}
