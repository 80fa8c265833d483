package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

// UploadOptions tune Upload.
type UploadOptions struct {
	MimeType  string // empty: the server guesses from the key
	ChunkSize int64  // bytes per append; 0 means 8 MiB. Raised to the session's min_chunk_size
	// Parallel above 1 sends the file as parts, this many at once, each
	// over its own connection (PartSize each; 0: the server's default).
	Parallel int
	PartSize int64
	Session  string // resume this session instead of creating one
	// OnSession is told the session once it is known, for example to save
	// its id so that a later run can resume it.
	OnSession func(Session)
	Progress  func(done, total int64)
	Retry     Retry
	// Verify makes the server prove that the file it publishes is the one
	// read from r: the client digests r and declares the result, and the
	// server publishes nothing else (CHECKSUM_MISMATCH). In order, the
	// server also computes a SHA-256 and the client hashes r while sending,
	// declaring both digests with the last chunk; with parts, the client
	// reads r once for its CRC32C before it creates the session.
	Verify bool
}

// Upload sends size bytes of r to bucket/key. After a network or server
// error it asks the session for its offset and goes on from there, so no
// byte is sent twice and none is lost; a chunk whose answer was lost but
// which landed is recognised by the server's 409 and skipped. Every chunk
// carries its CRC-32C; one the server found damaged (CHECKSUM_MISMATCH) is
// read from r again and resent, up to maxChecksumResends times in a row.
func (c *Client) Upload(ctx context.Context, r io.ReaderAt, size int64, bucket, key string, o UploadOptions) (File, error) {
	s, err := c.uploadSession(ctx, r, size, bucket, key, o)
	if err != nil {
		return File{}, err
	}
	if o.OnSession != nil {
		o.OnSession(s)
	}
	if s.Parallel || o.Parallel > 1 && s.PartCount > 1 && s.Offset == 0 {
		return c.uploadParts(ctx, r, s, o)
	}
	return c.uploadChunks(ctx, r, size, s, o)
}

// uploadSession resumes o.Session, which must be an upload of size bytes
// to bucket/key, or else creates a session.
func (c *Client) uploadSession(ctx context.Context, r io.ReaderAt, size int64, bucket, key string, o UploadOptions) (Session, error) {
	if o.Session == "" {
		ns := NewSession{Bucket: bucket, Key: key, MimeType: o.MimeType, Size: size, PartSize: o.PartSize}
		if o.Verify && o.Parallel > 1 {
			sums, err := Digest(io.NewSectionReader(r, 0, size), false)
			if err != nil {
				return Session{}, err
			}
			ns.Checksums = sums
		} else if o.Verify {
			ns.ChecksumAlgorithm = "sha256"
		}
		return c.Create(ctx, ns)
	}
	s, err := c.Session(ctx, o.Session)
	if err == nil && (s.Bucket != bucket || s.Key != key || s.Size != size) {
		return Session{}, fmt.Errorf("ferry: session %s uploads %d bytes to %s/%s, not %d bytes to %s/%s", s.ID, s.Size, s.Bucket, s.Key, size, bucket, key)
	}
	return s, err
}

// uploadChunks appends the bytes from the session's offset on, one chunk
// after another, until an append brings the file.
func (c *Client) uploadChunks(ctx context.Context, r io.ReaderAt, size int64, s Session, o UploadOptions) (File, error) {
	chunk := o.ChunkSize
	if chunk <= 0 {
		chunk = 8 << 20
	}
	chunk = max(chunk, s.MinChunkSize)
	offset, failures, mismatches := s.Offset, 0, 0
	whole := digestBehind(r, size, o.Verify, o.Session == "" && o.Parallel <= 1)
	for {
		if o.Progress != nil {
			o.Progress(offset, size)
		}
		n := min(chunk, size-offset)
		var sums *Checksums
		if offset+n == size {
			var err error
			if sums, err = whole(); err != nil {
				return File{}, err
			}
		}
		next, f, err := c.appendDeclaring(ctx, s.ID, offset, io.NewSectionReader(r, offset, n), n, sums)
		if f != nil {
			if o.Progress != nil {
				o.Progress(size, size)
			}
			return *f, nil
		}
		if err == nil {
			offset, failures, mismatches = next.Offset, 0, 0
			continue
		}
		var e *Error
		if errors.As(err, &e) && e.Code == "CHECKSUM_MISMATCH" && !e.wholeFileMismatch() && mismatches < maxChecksumResends {
			mismatches++ // nothing of it was kept: the next turn reads it from r afresh
			continue
		}
		failures++
		if errors.As(err, &e) && e.Code == "OFFSET_MISMATCH" && e.Offset != nil && failures < 100 {
			offset = *e.Offset // an earlier chunk landed though its answer was lost
			continue
		}
		if err := o.Retry.sleep(ctx, failures, err); err != nil {
			return File{}, err
		}
		if cur, err := c.Session(ctx, s.ID); err == nil {
			offset = cur.Offset
		} else if !retryable(err) {
			return File{}, err
		}
	}
}

// maxChecksumResends bounds the resends of one chunk the server found
// damaged. Damage on the way is rare; a chunk that keeps failing is being
// changed under us (the local file is being written) or broken at the
// source, and resending it cannot help.
const maxChecksumResends = 5

// DownloadOptions tune Download.
type DownloadOptions struct {
	// ETag is the ETag of the file the bytes already in the output came
	// from. They are kept only if the file still has it; otherwise the
	// download starts over. Empty with a non-empty output starts over too.
	ETag string
	// OnETag is told the file's ETag once the server has sent it, for
	// example to save it so that a later run can resume.
	OnETag   func(string)
	Progress func(done, total int64)
	Retry    Retry

	// Parallel above 1 fetches the file as ranges of RangeSize bytes (0:
	// 8 MiB), this many at once, each over its own connection and written
	// at its offset in out.
	Parallel  int
	RangeSize int64
	// Have is, with Parallel, how many bytes at the start of out are the
	// file's (of version ETag): the last OnHave of an earlier run. Out is
	// cut to them and the rest fetched.
	Have int64
	// OnHave is told, with Parallel, how many bytes from the start of out
	// are all in, each time that grows by a range, and once more before
	// Download returns an error, with out then cut to them.
	OnHave func(int64)
}

// Download writes bucket/key to out, going on from out's current size
// when opts.ETag says those bytes are still the file's (with Parallel:
// from opts.Have). After a network or server error it asks for the rest
// with Range and If-Range, so a file replaced meanwhile is never stitched
// from two versions. It returns the file's ETag.
func (c *Client) Download(ctx context.Context, bucket, key string, out *os.File, o DownloadOptions) (string, error) {
	download := c.downloadInOrder
	if o.Parallel > 1 {
		download = c.downloadParallel
	}
	etag, err := download(ctx, bucket, key, out, o)
	if err != nil {
		return etag, err
	}
	return etag, c.verifyDownload(ctx, bucket, key, out, etag)
}

// ErrDigestMismatch: the bytes downloaded are not the file the server's
// Repr-Digest describes.
var ErrDigestMismatch = errors.New("ferry: the downloaded bytes do not match the file's checksums")

// verifyDownload reads out whole and compares its digests with the
// file's Repr-Digest, asked for by a HEAD of the same version (a file
// without checksums, such as a registered one, is not checked).
func (c *Client) verifyDownload(ctx context.Context, bucket, key string, out *os.File, etag string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.base+filePath(bucket, key)+":content", nil)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return decodeError(resp)
	}
	if tag := resp.Header.Get("ETag"); tag != etag {
		return fmt.Errorf("ferry: %s/%s changed on the server while it downloaded (ETag %s, now %s): download it again", bucket, key, etag, tag)
	}
	want := parseReprDigest(resp.Header.Get("Repr-Digest"))
	if want == nil {
		return nil
	}
	got, err := Digest(io.NewSectionReader(out, 0, 1<<62), want.SHA256 != "")
	if err != nil {
		return err
	}
	if got.CRC32C != want.CRC32C && want.CRC32C != "" || got.SHA256 != want.SHA256 {
		return fmt.Errorf("%w: %s/%s has crc32c %s sha256 %s, the download crc32c %s sha256 %s", ErrDigestMismatch, bucket, key,
			want.CRC32C, want.SHA256, got.CRC32C, got.SHA256)
	}
	return nil
}

// parseReprDigest reads the crc32c and sha-256 of a Repr-Digest; nil if it
// names neither.
func parseReprDigest(h string) *Checksums {
	var c Checksums
	for _, item := range strings.Split(h, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(item), "=")
		value = strings.Trim(value, ":")
		switch strings.ToLower(name) {
		case "crc32c":
			c.CRC32C = value
		case "sha-256":
			c.SHA256 = value
		}
	}
	if c == (Checksums{}) {
		return nil
	}
	return &c
}

// downloadInOrder fetches the file from out's end on, in one stream.
func (c *Client) downloadInOrder(ctx context.Context, bucket, key string, out *os.File, o DownloadOptions) (string, error) {
	offset, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	etag, failures := o.ETag, 0
	if etag == "" && offset > 0 {
		if err := restart(out); err != nil {
			return "", err
		}
		offset = 0
	}
	for {
		n, total, tag, err := c.fetch(ctx, bucket, key, out, offset, etag, o)
		if tag != "" {
			etag = tag
		}
		offset += n
		if err == nil && offset == total {
			return etag, nil
		}
		if err == nil {
			err = fmt.Errorf("ferry: the download of %s/%s ended at %d of %d bytes", bucket, key, offset, total)
		}
		if n == 0 {
			failures++
		} else {
			failures = 1
		}
		if err := o.Retry.sleep(ctx, failures, err); err != nil {
			return etag, err
		}
	}
}

// fetch copies the file from offset on into out (from 0, after truncating
// out, if the server answers with the whole file).
func (c *Client) fetch(ctx context.Context, bucket, key string, out *os.File, offset int64, etag string, o DownloadOptions) (n, total int64, tag string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+filePath(bucket, key)+":content", nil)
	if err != nil {
		return 0, 0, "", err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		req.Header.Set("If-Range", etag)
	}
	resp, err := c.send(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	tag = resp.Header.Get("ETag")
	if tag != "" && tag != etag && o.OnETag != nil && resp.StatusCode < 300 {
		o.OnETag(tag) // before any byte is written, so a resume never mixes versions
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		_, size, ok := strings.Cut(resp.Header.Get("Content-Range"), "/")
		if total, err = strconv.ParseInt(size, 10, 64); !ok || err != nil {
			return 0, 0, tag, fmt.Errorf("ferry: bad Content-Range %q", resp.Header.Get("Content-Range"))
		}
	case http.StatusOK: // the whole file: new, or changed since the bytes we have
		if offset > 0 {
			if err := restart(out); err != nil {
				return 0, 0, tag, err
			}
			n = -offset
		}
		total = resp.ContentLength
	case http.StatusRequestedRangeNotSatisfiable: // we have it all, or more than it has
		if err := restart(out); err != nil {
			return 0, 0, tag, err
		}
		return -offset, -1, tag, fmt.Errorf("ferry: %d bytes already here do not fit %s/%s; starting over", offset, bucket, key)
	default:
		return 0, 0, tag, decodeError(resp)
	}
	done := offset + n
	w := io.Writer(out)
	if o.Progress != nil {
		w = &counter{w: out, done: done, total: total, progress: o.Progress}
	}
	copied, err := io.Copy(w, resp.Body)
	return n + copied, total, tag, err
}

// Read opens bucket/key's bytes for reading, without resumption.
func (c *Client) Read(ctx context.Context, bucket, key string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+filePath(bucket, key)+":content", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

func restart(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// counter reports progress as bytes are written.
type counter struct {
	w           io.Writer
	done, total int64
	progress    func(int64, int64)
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.done += int64(n)
	c.progress(c.done, c.total)
	return n, err
}

// Digest reads r whole for its CRC32C and, with sha, its SHA-256, in the
// form FileResponse.checksums carries.
func Digest(r io.Reader, sha bool) (*Checksums, error) {
	crc := crc32.New(castagnoli)
	sh := sha256.New()
	w := io.Writer(crc)
	if sha {
		w = io.MultiWriter(crc, sh)
	}
	if _, err := io.Copy(w, r); err != nil {
		return nil, fmt.Errorf("ferry: digest the local file: %w", err)
	}
	c := &Checksums{CRC32C: base64.StdEncoding.EncodeToString(crc.Sum(nil))}
	if sha {
		c.SHA256 = base64.StdEncoding.EncodeToString(sh.Sum(nil))
	}
	return c, nil
}

// digestBehind digests r in the background while the chunks go out, when
// verify is set (sha: the session computes a SHA-256 too), and returns
// the wait for it; without verify the wait returns nil at once.
func digestBehind(r io.ReaderAt, size int64, verify, sha bool) func() (*Checksums, error) {
	if !verify {
		return func() (*Checksums, error) { return nil, nil }
	}
	type result struct {
		c   *Checksums
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := Digest(io.NewSectionReader(r, 0, size), sha)
		done <- result{c, err}
	}()
	var once sync.Once
	var res result
	return func() (*Checksums, error) {
		once.Do(func() { res = <-done })
		return res.c, res.err
	}
}
