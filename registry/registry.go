// Package registry is the index of files: which buckets exist, which keys
// they hold, and what each file is. The upload-session engine publishes into
// it when a file completes; the handlers read, list and delete through it.
// Whoever keeps state about files (the vector stores) subscribes to its
// events rather than being called by each route that deletes or replaces.
//
// Its persistent layout is written down in keys.go.
//
// File ids are "file-" and 32 hex digits: 12 of the creation time in
// milliseconds, then 20 random, so ordering by id is ordering by creation
// and a cursor never skips files created in the same second.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/events"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

var (
	ErrFileNotFound   = errcode.Register("FILE_NOT_FOUND", "File Not Found", http.StatusNotFound)
	ErrBucketNotFound = errcode.Register("BUCKET_NOT_FOUND", "Bucket Not Found", http.StatusNotFound)
	ErrRange          = errcode.Register("RANGE_NOT_SATISFIABLE", "Range Not Satisfiable", http.StatusRequestedRangeNotSatisfiable)
	ErrInvalidCursor  = errcode.Register("INVALID_CURSOR", "Invalid Pagination Cursor", http.StatusBadRequest)
)

// File is one indexed file.
type File struct {
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	MimeType  string    `json:"mime_type"`
	Bytes     int64     `json:"bytes"`
	CreatedAt time.Time `json:"created_at"`
	ETag      string    `json:"etag,omitempty"`
	ID        string    `json:"id"` // file id, assigned on Publish
	// Attrs are the uploader's annotations (the OpenAI adapter keeps
	// filename, purpose and expiry here).
	Attrs map[string]string `json:"attrs,omitempty"`
	// Checksums of the whole file, when Ferry computed them (every upload;
	// a registered file has none).
	Checksums *Checksums `json:"checksums,omitempty"`
}

// Checksums are whole-file digests, each base64 of the big-endian digest
// bytes, as S3's x-amz-checksum-* headers carry them.
type Checksums struct {
	CRC32C string `json:"crc32c,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// fileResponse is the data of a file.created event: the native
// FileResponse, less its URL, which depends on the request.
type fileResponse struct {
	Bucket    string            `json:"bucket"`
	Key       string            `json:"key"`
	MimeType  string            `json:"mime_type"`
	Bytes     int64             `json:"bytes"`
	CreatedAt int64             `json:"created_at"`
	FileID    string            `json:"file_id"`
	Checksums *Checksums        `json:"checksums,omitempty"`
	Attrs     map[string]string `json:"attrs,omitempty"`
}

func (f File) response() fileResponse {
	return fileResponse{Bucket: f.Bucket, Key: f.Key, MimeType: f.MimeType, Bytes: f.Bytes, CreatedAt: f.CreatedAt.Unix(),
		FileID: f.ID, Checksums: f.Checksums, Attrs: f.Attrs}
}

// ReprDigest is the Repr-Digest header's value (RFC 9530) for c, "" for
// none: "crc32c=:<base64>:, sha-256=:<base64>:".
func (c *Checksums) ReprDigest() string {
	if c == nil {
		return ""
	}
	var out []string
	if c.CRC32C != "" {
		out = append(out, "crc32c=:"+c.CRC32C+":")
	}
	if c.SHA256 != "" {
		out = append(out, "sha-256=:"+c.SHA256+":")
	}
	return strings.Join(out, ", ")
}

// Registry is the file index over a metadata store and the blob backend.
type Registry struct {
	store  metastore.Store
	places *Resolver

	subsMu sync.RWMutex
	subs   []func(context.Context, Event)
}

// EventKind says why a file id left the index.
type EventKind string

const (
	// FileRemoved: the file was deleted (by any route, or by a purger).
	FileRemoved EventKind = "removed"
	// FileReplaced: another file was published at the same bucket and key
	// under a new id, so the old id names nothing any more.
	FileReplaced EventKind = "replaced"
)

// Event announces that File (as it was indexed) is gone: removed, or
// replaced by Replacement.
type Event struct {
	Kind        EventKind
	File        File
	Replacement File // FileReplaced only
}

// Subscribe adds fn to the subscribers of file events. Subscribers are
// called synchronously, in order, after the index change, on a context
// that outlives the caller's cancellation. The change is done by then and
// is not undone, so a subscriber cannot fail it: one that may fail must
// make its own work durable. Events are in-process: each instance sees
// the changes made through its own registry only.
func (r *Registry) Subscribe(fn func(context.Context, Event)) {
	r.subsMu.Lock()
	defer r.subsMu.Unlock()
	r.subs = append(r.subs, fn)
}

func (r *Registry) announce(ctx context.Context, e Event) {
	r.subsMu.RLock()
	subs := r.subs
	r.subsMu.RUnlock()
	ctx = context.WithoutCancel(ctx)
	for _, fn := range subs {
		fn(ctx, e)
	}
}

// New returns the file index over store, with buckets placed by places.
func New(store metastore.Store, places *Resolver) *Registry {
	return &Registry{store: store, places: places}
}

// Places is the resolver the registry places buckets with.
func (r *Registry) Places() *Resolver { return r.places }

// NewFileID mints a file id that sorts after every id minted before it by
// an earlier millisecond.
func NewFileID(now time.Time) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("file-%012x%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}

// Publish indexes a file whose bytes are already at ObjectKey, replacing
// any entry for the same key, and returns it with its new file id. A
// replaced entry of another id is announced as FileReplaced.
func (r *Registry) Publish(ctx context.Context, f File) (File, error) {
	if f.ID == "" {
		f.ID = NewFileID(f.CreatedAt)
	}
	old, err := r.indexed(ctx, f.Bucket, f.Key)
	replaced := err == nil && old.ID != f.ID
	var emit [][]byte
	if err != nil || replaced { // publishing it again (a completion retried) announces nothing new
		emit = append(emit, events.New(events.FileCreated, f.Bucket, f.Key, f.response()))
	}
	if replaced {
		if err := r.store.IndexDelete(ctx, idsIndex(f.Bucket), old.ID); err != nil {
			return File{}, err
		}
	}
	v, err := json.Marshal(f)
	if err != nil {
		return File{}, err
	}
	if err := r.store.IndexPut(ctx, idsIndex(f.Bucket), f.ID, v); err != nil {
		return File{}, fmt.Errorf("index file id: %w", err)
	}
	if err := r.store.IndexPut(ctx, filesIndex(f.Bucket), f.Key, v, emit...); err != nil {
		return File{}, fmt.Errorf("index file: %w", err)
	}
	if err := r.store.IndexPut(ctx, bucketsIndex, f.Bucket, []byte("{}")); err != nil {
		return File{}, fmt.Errorf("index bucket: %w", err)
	}
	if replaced {
		r.announce(ctx, Event{Kind: FileReplaced, File: old, Replacement: f})
	}
	return f, nil
}

// ByID returns the file of bkt with the given id.
func (r *Registry) ByID(ctx context.Context, bkt, id string) (File, error) {
	if id == "" { // no file has it, and bbolt refuses an empty index member
		return File{}, ErrFileNotFound.New("no file with id %q", id)
	}
	f, err := metastore.IndexGetJSON[File](ctx, r.store, idsIndex(bkt), id)
	if errors.Is(err, metastore.ErrNotFound) {
		return File{}, ErrFileNotFound.New("no file with id %q", id)
	}
	return f, err
}

// IDQuery selects files of one bucket by id, i.e. in creation order.
type IDQuery struct {
	After, Before string // exclusive cursors, in listing order
	Limit         int
	Desc          bool
	Keep          func(File) bool // optional filter, applied before Limit
}

// ListByID pages a bucket's files in creation order. With a filter it
// reads on until Limit files pass or the index ends; more reports whether
// another match follows.
func (r *Registry) ListByID(ctx context.Context, bkt string, q IDQuery) ([]File, bool, error) {
	if q.Limit <= 0 {
		q.Limit = metastore.DefaultLimit
	}
	var files []File
	after := q.After
	for {
		entries, more, err := r.store.IndexList(ctx, idsIndex(bkt), metastore.Query{After: after, Before: q.Before, Limit: q.Limit, Desc: q.Desc})
		if err != nil {
			return nil, false, err
		}
		for _, e := range entries {
			var f File
			if err := json.Unmarshal(e.Value, &f); err != nil {
				return nil, false, fmt.Errorf("decode file %s: %w", e.Member, err)
			}
			if q.Keep != nil && !q.Keep(f) {
				continue
			}
			if len(files) == q.Limit {
				return files, true, nil
			}
			files = append(files, f)
		}
		if !more {
			return files, false, nil
		}
		after = entries[len(entries)-1].Member
	}
}

// Get returns the file. In a registered bucket the object itself is the
// truth: size and ETag come from storage, the rest from its record if it
// has one.
func (r *Registry) Get(ctx context.Context, bkt, key string) (File, error) {
	p, err := r.places.Place(ctx, bkt)
	if err != nil {
		return File{}, err
	}
	return r.getAt(ctx, p, bkt, key)
}

// getAt is Get once the bucket's place is known.
func (r *Registry) getAt(ctx context.Context, p Place, bkt, key string) (File, error) {
	if p.Location == "" {
		return r.indexed(ctx, bkt, key)
	}
	info, err := p.Backend.Head(ctx, p.Object(key))
	switch {
	case errors.Is(err, bucket.ErrNotFound), errors.Is(err, bucket.ErrInvalidKey):
		return File{}, ErrFileNotFound.New("no file %q in bucket %q (%s)", key, bkt, p.Location)
	case err != nil:
		return File{}, err
	}
	f, err := r.indexed(ctx, bkt, key)
	if err != nil {
		return live(bkt, key, info), nil
	}
	if f.ETag != info.ETag || f.Bytes != info.Size { // changed outside Ferry: its checksums are another version's
		f.Checksums = nil
	}
	f.Bytes, f.ETag = info.Size, info.ETag
	return f, nil
}

// indexed returns the file's record.
func (r *Registry) indexed(ctx context.Context, bkt, key string) (File, error) {
	f, err := metastore.IndexGetJSON[File](ctx, r.store, filesIndex(bkt), key)
	if errors.Is(err, metastore.ErrNotFound) {
		return File{}, ErrFileNotFound.New("no file %q in bucket %q", key, bkt)
	}
	return f, err
}

// Page is one page of a listing; Next is the cursor for the following page
// ("" when there is none).
type Page[T any] struct {
	Data []T
	Next string
}

// List returns up to limit files of bkt whose key starts with prefix and
// sorts after the cursor `after`, in key order. A registered bucket lists
// its location live.
func (r *Registry) List(ctx context.Context, bkt, prefix, after string, limit int) (Page[File], error) {
	p, err := r.places.Place(ctx, bkt)
	if err != nil {
		return Page[File]{}, err
	}
	if p.Location != "" {
		return r.listLive(ctx, p, bkt, prefix, after, limit)
	}
	if n, err := r.store.IndexLen(ctx, filesIndex(bkt)); err != nil {
		return Page[File]{}, err
	} else if n == 0 {
		return Page[File]{}, ErrBucketNotFound.New("bucket %q has no files", bkt)
	}
	entries, more, err := r.store.IndexList(ctx, filesIndex(bkt), metastore.Query{Prefix: prefix, After: after, Limit: limit})
	if err != nil {
		return Page[File]{}, err
	}
	page := Page[File]{Data: make([]File, 0, len(entries))}
	for _, e := range entries {
		f, err := decodeFile(e)
		if err != nil {
			return Page[File]{}, err
		}
		page.Data = append(page.Data, f)
	}
	if more && len(entries) > 0 {
		page.Next = entries[len(entries)-1].Member
	}
	return page, nil
}

func decodeFile(e metastore.Entry) (File, error) {
	var f File
	if err := json.Unmarshal(e.Value, &f); err != nil {
		return File{}, fmt.Errorf("decode file entry %s: %w", e.Member, err)
	}
	return f, nil
}

// listLive lists one page of the location and lays the file records of the
// same key range over it (one index read per page).
func (r *Registry) listLive(ctx context.Context, p Place, bkt, prefix, after string, limit int) (Page[File], error) {
	if limit <= 0 {
		limit = metastore.DefaultLimit
	}
	objs, more, err := p.Backend.List(ctx, prefix, after, limit)
	if err != nil {
		return Page[File]{}, err
	}
	page := Page[File]{Data: make([]File, 0, len(objs))}
	if len(objs) == 0 {
		return page, nil
	}
	known := map[string]File{}
	q := metastore.Query{Prefix: prefix, After: after, Before: objs[len(objs)-1].Key + "\x00", Limit: 1000}
	for {
		entries, more, err := r.store.IndexList(ctx, filesIndex(bkt), q)
		if err != nil {
			return Page[File]{}, err
		}
		for _, e := range entries {
			if f, err := decodeFile(e); err == nil {
				known[e.Member] = f
			}
		}
		if !more {
			break
		}
		q.After = entries[len(entries)-1].Member
	}
	for _, o := range objs {
		f, ok := known[o.Key]
		if !ok {
			f = live(bkt, o.Key, o)
		}
		f.Bytes, f.ETag = o.Size, o.ETag
		page.Data = append(page.Data, f)
	}
	if more {
		page.Next = objs[len(objs)-1].Key
	}
	return page, nil
}

// Bucket is one entry of the bucket list.
type Bucket struct {
	Name     string
	Location string // set for a registered bucket
}

// Buckets lists buckets after the cursor, in name order.
func (r *Registry) Buckets(ctx context.Context, after string, limit int) (Page[Bucket], error) {
	entries, more, err := r.store.IndexList(ctx, bucketsIndex, metastore.Query{After: after, Limit: limit})
	if err != nil || len(entries) == 0 {
		return Page[Bucket]{Data: []Bucket{}}, err
	}
	last := entries[len(entries)-1].Member
	locs, _, err := r.store.IndexList(ctx, locationsIndex, metastore.Query{After: after, Before: last + "\x00", Limit: len(entries)})
	if err != nil {
		return Page[Bucket]{}, err
	}
	where := map[string]string{}
	for _, e := range locs {
		where[e.Member] = string(e.Value)
	}
	page := Page[Bucket]{Data: make([]Bucket, 0, len(entries))}
	for _, e := range entries {
		page.Data = append(page.Data, Bucket{Name: e.Member, Location: where[e.Member]})
	}
	if more {
		page.Next = last
	}
	return page, nil
}

// Delete removes the file's bytes and then its record, so a failure leaves
// the record pointing at nothing rather than bytes nobody can find; then
// it announces FileRemoved. It holds the key's lock, so that a completion
// of the same key comes wholly before it or after it.
func (r *Registry) Delete(ctx context.Context, bkt, key string) (File, error) {
	var f File
	err := r.withKey(ctx, bkt, key, func(ctx context.Context) error {
		var err error
		f, err = r.delete(ctx, bkt, key)
		return err
	})
	if err != nil {
		return File{}, err
	}
	r.announce(ctx, Event{Kind: FileRemoved, File: f})
	return f, nil
}

func (r *Registry) delete(ctx context.Context, bkt, key string) (File, error) {
	p, err := r.places.Place(ctx, bkt)
	if err != nil {
		return File{}, err
	}
	f, err := r.getAt(ctx, p, bkt, key)
	if err != nil {
		return File{}, err
	}
	if err := p.Backend.Delete(ctx, p.Object(key)); err != nil {
		return File{}, fmt.Errorf("delete blob: %w", err)
	}
	deleted := events.New(events.FileDeleted, bkt, key, struct {
		Bucket string `json:"bucket"`
		Key    string `json:"key"`
		FileID string `json:"file_id,omitempty"`
	}{bkt, key, f.ID})
	if err := r.store.IndexDelete(ctx, filesIndex(bkt), key, deleted); err != nil {
		return File{}, fmt.Errorf("unindex file: %w", err)
	}
	if f.ID != "" {
		if err := r.store.IndexDelete(ctx, idsIndex(bkt), f.ID); err != nil {
			return File{}, fmt.Errorf("unindex file id: %w", err)
		}
	}
	if p.Location == "" {
		if n, err := r.store.IndexLen(ctx, filesIndex(bkt)); err == nil && n == 0 {
			_ = r.store.IndexDelete(ctx, bucketsIndex, bkt)
		}
	}
	return f, nil
}

// Open streams the file's bytes, or the range of them, and returns the
// version they are: f, or the newer one a replacement put in storage and
// had not published yet (which Open publishes, see replace.go). A caller
// whose headers described f must start again with that one.
func (r *Registry) Open(ctx context.Context, f File, rng *bucket.Range) (io.ReadCloser, File, error) {
	p, err := r.places.Place(ctx, f.Bucket)
	if err != nil {
		return nil, File{}, err
	}
	rc, info, err := p.Backend.Get(ctx, p.Object(f.Key), rng)
	switch {
	case errors.Is(err, bucket.ErrNotFound):
		return nil, File{}, ErrFileNotFound.Wrap(err, "the bytes of %s/%s are missing from storage", f.Bucket, f.Key)
	case errors.Is(err, bucket.ErrInvalidRange):
		return nil, File{}, ErrRange.New("range starts beyond the file's %d bytes", f.Bytes).With("bytes", f.Bytes)
	case err != nil:
		return nil, File{}, err
	}
	if sameVersion(f, info) {
		return rc, f, nil
	}
	// Never send bytes under a size or ETag they do not have.
	cur, ok, err := r.rollForward(ctx, f, info)
	if err != nil || !ok {
		rc.Close()
		if err == nil {
			err = errcode.ErrUnavailable.New("%s/%s in storage (%d bytes, ETag %s) is not the version its record describes (%d bytes, ETag %s): "+
				"the object was changed outside Ferry; retry shortly", f.Bucket, f.Key, info.Size, info.ETag, f.Bytes, f.ETag)
		}
		return nil, File{}, err
	}
	return rc, cur, nil
}

// PresignGet returns a URL that reads f's bytes straight from its storage
// for ttl, or "" when that storage hands out no URLs (the filesystem).
// Storage holds a whole version at the key either way, but the URL reads
// whichever version is there when it is used.
func (r *Registry) PresignGet(ctx context.Context, f File, ttl time.Duration, opts bucket.PresignOptions) (string, error) {
	p, err := r.places.Place(ctx, f.Bucket)
	if err != nil || p.Presigner == nil {
		return "", err
	}
	return p.Presigner.PresignGet(ctx, p.Object(f.Key), ttl, opts)
}

// sameVersion reports whether the object read is the one f describes. A
// side without an ETag (an old record, storage without ETags) is judged by
// size alone.
func sameVersion(f File, info bucket.ObjectInfo) bool {
	a, b := strings.Trim(f.ETag, `"`), strings.Trim(info.ETag, `"`)
	return info.Size == f.Bytes && (a == "" || b == "" || a == b)
}
