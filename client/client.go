// Package client is a Go client for Ferry's native API: resumable uploads
// and downloads, file info, listing, deletion and registration. cmd/ferry
// is built on it.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to one ferryd.
type Client struct {
	base   string
	http   *http.Client
	apiKey string
}

// New returns a client of the server at baseURL (for example
// http://127.0.0.1:8321). A nil hc means http.DefaultClient.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: hc}
}

// WithAPIKey returns a copy of c that sends key as its bearer token.
func (c *Client) WithAPIKey(key string) *Client {
	cp := *c
	cp.apiKey = key
	return &cp
}

// send sends req with the client's API key, if it has one.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	return c.http.Do(req)
}

// Error is an error answer from the server.
type Error struct {
	Status int    // HTTP status
	Code   string // e.g. OFFSET_MISMATCH
	Detail string
	Offset *int64 // the session's offset, when the server said it
	// RetryAfter is the server's Retry-After (503 UNAVAILABLE, SESSION_BUSY); 0 when not sent.
	RetryAfter time.Duration
	// Algorithm is set on a CHECKSUM_MISMATCH of the whole file (not of
	// one chunk): the file's digest differs from the one declared at
	// create, and nothing was published. Expected and Actual are the two.
	Algorithm, Expected, Actual string
}

// wholeFileMismatch: the file differs from its declared digest, which no
// resend can mend.
func (e *Error) wholeFileMismatch() bool { return e.Code == "CHECKSUM_MISMATCH" && e.Algorithm != "" }

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("ferry: HTTP %d: %s", e.Status, e.Detail)
	}
	return fmt.Sprintf("ferry: %s (%d): %s", e.Code, e.Status, e.Detail)
}

// IsNotFound reports whether err is a 404 or 410 from the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusGone)
}

// Session is an upload session.
type Session struct {
	ID           string `json:"id"`
	URL          string `json:"url"`
	Offset       int64  `json:"offset"`
	Size         int64  `json:"size"`
	Bucket       string `json:"bucket"`
	Key          string `json:"key"`
	MimeType     string `json:"mime_type"`
	Status       string `json:"status"` // uploading or completed
	ExpiresAt    int64  `json:"expires_at"`
	MinChunkSize int64  `json:"min_chunk_size"`
	// Parallel parts: every part's size but the last's, how many there
	// are, and once the session takes parts, which landed ([first, last]
	// ranges of part numbers).
	PartSize  int64 `json:"part_size"`
	PartCount int   `json:"part_count"`
	Parallel  bool  `json:"parallel"`
	// UploadURL is URL with an upload link: it appends to, puts parts of,
	// reads and aborts this session without an API key.
	UploadURL string   `json:"upload_url,omitempty"`
	Parts     [][2]int `json:"parts"`
}

// File is a stored file (the FileResponse).
type File struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	MimeType  string `json:"mime_type"`
	URL       string `json:"url"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	FileID    string `json:"file_id"`
	// Checksums of the whole file; nil on a registered file.
	Checksums *Checksums `json:"checksums,omitempty"`
}

// Checksums are whole-file digests: base64 of the big-endian digest bytes,
// as S3's x-amz-checksum-* headers carry them.
type Checksums struct {
	CRC32C string `json:"crc32c,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// reprDigest is c as a Repr-Digest header value (RFC 9530).
func (c *Checksums) reprDigest() string {
	if c == nil {
		return ""
	}
	var items []string
	if c.SHA256 != "" {
		items = append(items, "sha-256=:"+c.SHA256+":")
	}
	if c.CRC32C != "" {
		items = append(items, "crc32c=:"+c.CRC32C+":")
	}
	return strings.Join(items, ", ")
}

// Bucket is an entry of the bucket list.
type Bucket struct {
	Name     string `json:"name"`
	Location string `json:"location,omitempty"`
}

// Page is one page of a list; Next goes in the next call's after.
type Page[T any] struct {
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	Next    string `json:"next"`
}

// filePath is the escaped path of bucket/key; keys keep their slashes.
func filePath(bucket, key string) string {
	p := "/v1/files/" + url.PathEscape(bucket)
	if key != "" {
		parts := strings.Split(key, "/")
		for i, s := range parts {
			parts[i] = url.PathEscape(s)
		}
		p += "/" + strings.Join(parts, "/")
	}
	return p
}

// do sends a request and decodes a JSON answer into out (nil: none).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, n int64, hdr http.Header, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = n
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp, decodeError(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("ferry: %s %s: bad answer: %w", method, path, err)
		}
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Offset *int64 `json:"offset"`
		// CHECKSUM_MISMATCH of the whole file
		Algorithm string `json:"algorithm"`
		Expected  string `json:"expected"`
		Actual    string `json:"actual"`
	}
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Code != "" {
		e.Code, e.Detail, e.Offset = body.Code, body.Detail, body.Offset
		e.Algorithm, e.Expected, e.Actual = body.Algorithm, body.Expected, body.Actual
	} else {
		e.Detail = strings.TrimSpace(string(raw))
	}
	if e.Offset == nil {
		if v, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64); err == nil {
			e.Offset = &v
		}
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	return e
}

func jsonBody(v any) (io.Reader, int64, http.Header) {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b), int64(len(b)), http.Header{"Content-Type": {"application/json"}}
}

// CreateSession starts an upload of size bytes to bucket/key.
func (c *Client) CreateSession(ctx context.Context, bucket, key, mimeType string, size int64) (Session, error) {
	return c.Create(ctx, NewSession{Bucket: bucket, Key: key, MimeType: mimeType, Size: size})
}

// NewSession is what Create asks for.
type NewSession struct {
	Bucket, Key, MimeType string
	Size                  int64
	PartSize              int64 // parallel parts' size; 0: the server's default
	// ChecksumAlgorithm "sha256" makes the server compute the file's
	// SHA-256 besides its CRC32C (sequential appends only). Checksums are
	// the values the file must have: the server publishes nothing else.
	ChecksumAlgorithm string
	Checksums         *Checksums
}

// Create starts an upload session.
func (c *Client) Create(ctx context.Context, ns NewSession) (Session, error) {
	req := map[string]any{"bucket": ns.Bucket, "key": ns.Key, "mime_type": ns.MimeType, "size": ns.Size}
	if ns.PartSize > 0 {
		req["part_size"] = ns.PartSize
	}
	if ns.ChecksumAlgorithm != "" {
		req["checksum_algorithm"] = ns.ChecksumAlgorithm
	}
	if ns.Checksums != nil {
		req["checksums"] = ns.Checksums
	}
	body, n, hdr := jsonBody(req)
	var s Session
	_, err := c.do(ctx, http.MethodPost, "/v1/files", body, n, hdr, &s)
	return s, err
}

// Session returns a session, its offset included.
func (c *Client) Session(ctx context.Context, id string) (Session, error) {
	var s Session
	_, err := c.do(ctx, http.MethodGet, "/v1/files/session:"+url.PathEscape(id), nil, 0, nil, &s)
	return s, err
}

// Append sends n bytes of body at offset. It returns the session, and the
// file once the last byte has landed (or, with n 0, if it already had).
//
// A body that is an io.ReadSeeker (a file, an io.SectionReader) is read
// twice: first for its CRC-32C, sent as Upload-Checksum, so that bytes
// damaged on the way are refused by the server (CHECKSUM_MISMATCH) instead
// of stored. Any other body is sent without a checksum.
func (c *Client) Append(ctx context.Context, id string, offset int64, body io.Reader, n int64) (Session, *File, error) {
	return c.appendDeclaring(ctx, id, offset, body, n, nil)
}

// appendDeclaring is Append that also declares the whole file's digests
// (Repr-Digest), which the server checks before it publishes the file.
func (c *Client) appendDeclaring(ctx context.Context, id string, offset int64, body io.Reader, n int64, whole *Checksums) (Session, *File, error) {
	hdr := http.Header{"Upload-Offset": {strconv.FormatInt(offset, 10)}, "Content-Type": {"application/octet-stream"}}
	if d := whole.reprDigest(); d != "" {
		hdr.Set("Repr-Digest", d)
	}
	if body == nil || n == 0 {
		body = http.NoBody
	} else if rs, ok := body.(io.ReadSeeker); ok {
		sum, err := crc32c(rs, n)
		if err != nil {
			return Session{}, nil, err
		}
		hdr.Set("Upload-Checksum", sum)
	}
	var out struct {
		Session
		Bytes     int64      `json:"bytes"`
		CreatedAt int64      `json:"created_at"`
		FileID    string     `json:"file_id"`
		Checksums *Checksums `json:"checksums"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/files/session:"+url.PathEscape(id), body, n, hdr, &out); err != nil {
		return Session{}, nil, err
	}
	if out.ID != "" {
		return out.Session, nil, nil
	}
	f := &File{Bucket: out.Bucket, Key: out.Key, MimeType: out.MimeType, URL: out.URL, Bytes: out.Bytes,
		CreatedAt: out.CreatedAt, FileID: out.FileID, Checksums: out.Checksums}
	return Session{ID: id, Offset: f.Bytes, Size: f.Bytes, Bucket: f.Bucket, Key: f.Key, MimeType: f.MimeType, Status: "completed"}, f, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c digests the next n bytes of rs and rewinds it, returning an
// Upload-Checksum value ("crc32c <base64 of the big-endian CRC>").
func crc32c(rs io.ReadSeeker, n int64) (string, error) {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := crc32.New(castagnoli)
	if _, err := io.CopyN(h, rs, n); err != nil {
		return "", fmt.Errorf("ferry: read the chunk for its checksum: %w", err)
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	return "crc32c " + base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, h.Sum32())), nil
}

// Abort ends a session and frees what it holds.
func (c *Client) Abort(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/files/session:"+url.PathEscape(id), nil, 0, nil, nil)
	return err
}

// Stat returns a file's information.
func (c *Client) Stat(ctx context.Context, bucket, key string) (File, error) {
	var f File
	_, err := c.do(ctx, http.MethodGet, filePath(bucket, key), nil, 0, nil, &f)
	return f, err
}

// Delete deletes a file.
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	_, err := c.do(ctx, http.MethodDelete, filePath(bucket, key), nil, 0, nil, nil)
	return err
}

// Buckets lists a page of buckets.
func (c *Client) Buckets(ctx context.Context, after string, limit int) (Page[Bucket], error) {
	var p Page[Bucket]
	_, err := c.do(ctx, http.MethodGet, "/v1/files?"+listQuery("", after, limit).Encode(), nil, 0, nil, &p)
	return p, err
}

// List lists a page of a bucket's files under prefix, in key order.
func (c *Client) List(ctx context.Context, bucket, prefix, after string, limit int) (Page[File], error) {
	var p Page[File]
	_, err := c.do(ctx, http.MethodGet, filePath(bucket, "")+"?"+listQuery(prefix, after, limit).Encode(), nil, 0, nil, &p)
	return p, err
}

// listQuery is the query of a page: Buckets, List and Events.
func listQuery(prefix, after string, limit int) url.Values {
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// Registration is the answer to a bucket registration.
type Registration struct {
	Bucket         string `json:"bucket"`
	Location       string `json:"location"`
	CreatedAt      int64  `json:"created_at"`
	Status         string `json:"status"`
	FileCount      int64  `json:"file_count"`
	Bytes          int64  `json:"bytes"`
	CountTruncated bool   `json:"count_truncated"`
}

// RegisterBucket serves existing data (s3://bucket/prefix or file:///dir)
// as bucket.
func (c *Client) RegisterBucket(ctx context.Context, bucket, location string) (Registration, error) {
	body, n, hdr := jsonBody(map[string]string{"location": location})
	var r Registration
	_, err := c.do(ctx, http.MethodPut, filePath(bucket, ""), body, n, hdr, &r)
	return r, err
}

// UnregisterBucket forgets a registration; the data stays.
func (c *Client) UnregisterBucket(ctx context.Context, bucket string) error {
	_, err := c.do(ctx, http.MethodDelete, filePath(bucket, ""), nil, 0, nil, nil)
	return err
}

// RegisterFile records one existing object of a registered bucket.
func (c *Client) RegisterFile(ctx context.Context, bucket, key string) (File, error) {
	var f File
	_, err := c.do(ctx, http.MethodPut, filePath(bucket, key), nil, 0, nil, &f)
	return f, err
}

// Checksum has the server compute and record the checksums of a file in a
// registered bucket, which has none until asked (admin; the server reads
// the bytes once). A file Ferry stored comes back with its own.
func (c *Client) Checksum(ctx context.Context, bucket, key string) (File, error) {
	var f File
	_, err := c.do(ctx, http.MethodPost, filePath(bucket, key)+":checksums", nil, 0, nil, &f)
	return f, err
}

// Retry says how long to keep trying after network errors and answers worth
// retrying (5xx, 429, SESSION_BUSY): Attempts in a row, waiting Wait after
// the first and twice as long after each next, up to 30 s.
type Retry struct {
	Attempts int           // 0 means 10
	Wait     time.Duration // 0 means 500 ms
}

func (r Retry) sleep(ctx context.Context, failures int, err error) error {
	attempts, wait := r.Attempts, r.Wait
	if attempts <= 0 {
		attempts = 10
	}
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	if !retryable(err) || failures >= attempts {
		return err
	}
	d := wait << (failures - 1)
	var e *Error
	if errors.As(err, &e) {
		d = max(d, e.RetryAfter) // the server knows best when it can serve again
	}
	d = min(d, 30*time.Second)
	select {
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	case <-time.After(d):
		return nil
	}
}

// retryable: the network, the server's own trouble (a 503 when Redis or
// S3 is away), a busy session, or a body that arrived short or too slowly.
// Anything else the client must fix, so trying again cannot help.
func retryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout ||
		e.Code == "SESSION_BUSY" || e.Code == "PART_BUSY" || e.Code == "SHORT_BODY"
}
