package registry

// Registered buckets serve data that was there before Ferry, without
// copying it. A registration maps a bucket name to a location: a record
// "registry/location/<bucket>" and an entry in the locations index (keys.go).
//
// Listing, reading, deleting and new uploads then go to the location, read
// live: nothing is imported, so a prefix of any size lists one bounded page
// at a time, and objects added behind Ferry's back show up at once. Files
// uploaded or registered through Ferry also get a file record (for their id
// and MIME type), merged into listings.
//
// Safety. A file:// location must lie under an allowed root twice over: as
// written (cleaned, so ".." cannot climb out), and once every symlink on
// the way is resolved. The backend then reaches files only through an
// os.Root of the resolved directory and refuses symlinks inside it
// (fsblob), so nothing planted later escapes either. An s3:// location
// names a bucket and prefix only: the endpoint and credentials are
// Ferry's own, so a request can never choose the host Ferry talks to.
// Neither kind may overlap Ferry's own storage, nor another registration
// (LOCATION_OVERLAP, 409): one registered directory inside another would
// reach the inner one's staging directory and its unfinished uploads.
// Nor may a location lie inside a staging directory (.ferry-staging, in
// any letter case), and no key may name one (bucket.ValidateKey).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryhq/ferry/events"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

var (
	ErrInvalidLocation   = errcode.Register("INVALID_LOCATION", "Invalid Location", http.StatusBadRequest)
	ErrLocationForbidden = errcode.Register("LOCATION_NOT_ALLOWED", "Location Not Allowed", http.StatusForbidden)
	ErrLocationNotFound  = errcode.Register("LOCATION_NOT_FOUND", "Location Not Found", http.StatusNotFound)
	ErrBucketConflict    = errcode.Register("BUCKET_CONFLICT", "Bucket Conflict", http.StatusConflict)
	ErrNotRegistered     = errcode.Register("BUCKET_NOT_REGISTERED", "Bucket Not Registered", http.StatusNotFound)
	// ErrLocationOverlap: the location is inside, contains or is another
	// bucket's registered location.
	ErrLocationOverlap = errcode.Register("LOCATION_OVERLAP", "Location Overlaps Another Registration", http.StatusConflict)
)

// countLimit bounds the objects counted when a bucket is registered, so
// registering a huge prefix stays one quick request.
const countLimit = 10000

// Location is a parsed storage location.
type Location struct {
	Scheme   string // "s3" or "file"
	S3Bucket string // s3: the S3 bucket
	Prefix   string // s3: the key prefix, without a trailing '/'
	Dir      string // file: the absolute directory
}

// String is the canonical URI: s3://bucket[/prefix] or file:///dir, the
// directory percent-encoded so that the URI parses back to it ('%', '?',
// '#' and the like are legal in directory names).
func (l Location) String() string {
	switch {
	case l.Scheme == "file":
		return (&url.URL{Scheme: "file", Path: filepath.ToSlash(l.Dir)}).String()
	case l.Prefix != "":
		return "s3://" + l.S3Bucket + "/" + l.Prefix
	}
	return "s3://" + l.S3Bucket
}

// Overlaps reports whether one location contains the other, as written.
// overlapsRegistered also compares directories as they are on disk.
func (l Location) Overlaps(o Location) bool {
	switch {
	case l.Scheme != o.Scheme:
		return false
	case l.Scheme == "file":
		return within(l.Dir, o.Dir) || within(o.Dir, l.Dir)
	}
	return l.S3Bucket == o.S3Bucket && (under(l.Prefix, o.Prefix) || under(o.Prefix, l.Prefix))
}

// sameDirAbove reports whether dir, or a directory above it, is the very
// directory root (os.SameFile), which comparing names cannot tell on a
// filesystem that folds case or through a bind mount.
func sameDirAbove(dir, root string) bool {
	rfi, err := os.Stat(root)
	if err != nil {
		return false
	}
	for d := dir; ; {
		if fi, err := os.Stat(d); err == nil && os.SameFile(fi, rfi) {
			return true
		}
		parent := filepath.Dir(d)
		if parent == d {
			return false
		}
		d = parent
	}
}

// overlapsRegistered reports whether loc, checked and resolved, overlaps
// the registered location other: file:// directories by their resolved
// paths (the registered one resolved again, in case its links changed)
// and by identity on disk; s3:// by bucket and prefix.
func overlapsRegistered(loc, other Location) bool {
	if loc.Scheme != "file" || other.Scheme != "file" {
		return loc.Overlaps(other)
	}
	dirs := []string{other.Dir}
	if real, err := filepath.EvalSymlinks(other.Dir); err == nil && real != other.Dir {
		dirs = append(dirs, real)
	}
	for _, d := range dirs {
		if within(loc.Dir, d) || within(d, loc.Dir) || sameDirAbove(loc.Dir, d) || sameDirAbove(d, loc.Dir) {
			return true
		}
	}
	return false
}

// under reports whether key prefix p lies under prefix q ("" holds all).
func under(p, q string) bool { return q == "" || p == q || strings.HasPrefix(p, q+"/") }

// within reports whether dir p is root or below it.
func within(p, root string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

const locationHelp = "use s3://bucket[/prefix] or file:///absolute/directory"

// ParseLocation checks a location's syntax; it touches nothing.
func ParseLocation(uri string) (Location, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, ErrInvalidLocation.New("location %q does not parse (%v): %s", uri, err, locationHelp)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Location{}, ErrInvalidLocation.New("location %q: a location has no user, query or fragment; %s", uri, locationHelp)
	}
	switch u.Scheme {
	case "s3":
		if u.Port() != "" || !bucket.ValidS3Bucket(u.Host) {
			return Location{}, ErrInvalidLocation.New("location %q: %q is not an S3 bucket name (3-63 characters of a-z, 0-9, '.' and '-'); the S3 endpoint is Ferry's configured one and cannot be named here", uri, u.Host)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" {
			if err := bucket.ValidateKey(prefix); err != nil {
				return Location{}, ErrInvalidLocation.New("location %q: bad prefix: %v", uri, err)
			}
		}
		return Location{Scheme: "s3", S3Bucket: u.Host, Prefix: prefix}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, ErrInvalidLocation.New("location %q names host %q: file:// locations are local, write file:///absolute/directory", uri, u.Host)
		}
		if !path.IsAbs(u.Path) || strings.ContainsRune(u.Path, 0) {
			return Location{}, ErrInvalidLocation.New("location %q: the path must be absolute, as in file:///data/datasets", uri)
		}
		dir := filepath.Clean(filepath.FromSlash(u.Path))
		if err := noStaging(dir); err != nil {
			return Location{}, ErrInvalidLocation.New("location %q: %v", uri, err)
		}
		return Location{Scheme: "file", Dir: dir}, nil
	case "":
		return Location{}, ErrInvalidLocation.New("location %q has no scheme: %s", uri, locationHelp)
	}
	return Location{}, ErrInvalidLocation.New("location %q: scheme %q is not supported; %s", uri, u.Scheme, locationHelp)
}

// noStaging refuses a directory inside a staging directory (a
// .ferry-staging segment, in any letter case): a registration there would
// reach another registration's unfinished uploads.
func noStaging(dir string) error {
	for seg := range strings.SplitSeq(filepath.ToSlash(dir), "/") {
		if bucket.IsStagingSegment(seg) {
			return fmt.Errorf("%s lies inside %q: a %s directory (in any letter case) is where a registered directory keeps its unfinished uploads; register a directory outside it", dir, seg, bucket.StagingSegment)
		}
	}
	return nil
}

// Registration is a registered bucket.
type Registration struct {
	Bucket    string    `json:"bucket"`
	Location  string    `json:"location"`
	CreatedAt time.Time `json:"created_at"`
	// Files and Bytes count the objects found at registration, up to
	// countLimit; Partial says the count stopped there.
	Files   int64 `json:"files"`
	Bytes   int64 `json:"bytes"`
	Partial bool  `json:"partial,omitempty"`
}

// RegisterBucket maps bkt to the location uri and reports whether the
// registration is new. Registering the same
// location again refreshes the counts; another location is a conflict, as
// is a name that already holds files in Ferry's own storage. Nothing is
// written unless the location was opened and listed successfully.
//
// No two registrations overlap: a location inside, containing or equal to
// another bucket's is ErrLocationOverlap. Registrations are made one at a
// time under a lock, so two overlapping ones cannot both pass that check.
func (r *Registry) RegisterBucket(ctx context.Context, bkt, uri string) (reg Registration, created bool, err error) {
	loc, err := r.places.check(uri)
	if err != nil {
		return Registration{}, false, err
	}
	err = metastore.WithLock(ctx, r.store, registerLock, metastore.LockOptions{TTL: registerLockTTL, Wait: registerLockWait},
		func(h metastore.Held) error {
			reg, created, err = r.register(h.Ctx, bkt, loc, h.Fence)
			return err
		})
	if errors.Is(err, metastore.ErrLocked) {
		return Registration{}, false, errcode.ErrConflict.New("another bucket registration kept the registration lock for %s; retry", registerLockWait)
	}
	return reg, created, err
}

const (
	registerLockTTL  = 30 * time.Second
	registerLockWait = 30 * time.Second
)

// overlapping returns the other bucket whose registered location overlaps
// loc, if any.
func (r *Registry) overlapping(ctx context.Context, bkt string, loc Location) (name, location string, err error) {
	after := ""
	for {
		entries, more, err := r.store.IndexList(ctx, locationsIndex, metastore.Query{After: after, Limit: 500})
		if err != nil {
			return "", "", err
		}
		for _, e := range entries {
			if e.Member == bkt {
				continue // its own registration: a repeat, or the conflict found before
			}
			other, err := ParseLocation(string(e.Value))
			if err != nil {
				other, err = parseRegistered(string(e.Value))
			}
			if err == nil && overlapsRegistered(loc, other) {
				return e.Member, string(e.Value), nil
			}
		}
		if !more {
			return "", "", nil
		}
		after = entries[len(entries)-1].Member
	}
}

// parseRegistered reads a stored location that no longer parses (one
// registered before ParseLocation refused staging directories), so that it
// still counts for overlaps.
func parseRegistered(uri string) (Location, error) {
	if dir, ok := strings.CutPrefix(uri, "file://"); ok && filepath.IsAbs(dir) {
		return Location{Scheme: "file", Dir: filepath.Clean(dir)}, nil
	}
	if rest, ok := strings.CutPrefix(uri, "s3://"); ok {
		bkt, prefix, _ := strings.Cut(rest, "/")
		return Location{Scheme: "s3", S3Bucket: bkt, Prefix: prefix}, nil
	}
	return Location{}, fmt.Errorf("unknown location %q", uri)
}

// register is RegisterBucket under the registration lock.
func (r *Registry) register(ctx context.Context, bkt string, loc Location, fence int64) (reg Registration, created bool, err error) {
	old, ver, err := r.places.registration(ctx, bkt)
	switch {
	case err == nil && old.Location != loc.String():
		return Registration{}, false, ErrBucketConflict.New("bucket %q is registered to %s; unregister it first (DELETE /v1/files/%s)", bkt, old.Location, bkt)
	case errcode.Is(err, ErrNotRegistered):
		if n, err := r.store.IndexLen(ctx, filesIndex(bkt)); err != nil {
			return Registration{}, false, err
		} else if n > 0 {
			return Registration{}, false, ErrBucketConflict.New("bucket %q already holds %d files in Ferry's own storage; register the location under another name", bkt, n)
		}
	case err != nil:
		return Registration{}, false, err
	}
	if name, other, err := r.overlapping(ctx, bkt, loc); err != nil {
		return Registration{}, false, err
	} else if name != "" {
		return Registration{}, false, ErrLocationOverlap.New("location %s overlaps bucket %q, registered to %s: registered locations may not be inside, contain or equal one another; register a location that does not overlap it, or unregister %q first (DELETE /v1/files/%s)",
			loc, name, other, name, name)
	}
	b, err := r.places.Backend(loc.String())
	if err != nil {
		return Registration{}, false, err
	}
	reg = Registration{Bucket: bkt, Location: loc.String(), CreatedAt: time.Now().UTC()}
	if ver > 0 {
		reg.CreatedAt = old.CreatedAt
	}
	if reg.Files, reg.Bytes, reg.Partial, err = count(ctx, b.Backend, loc); err != nil {
		return Registration{}, false, err
	}
	var emit [][]byte
	if ver == 0 {
		emit = append(emit, reg.event(events.BucketRegistered))
	}
	if _, err := metastore.PutJSON(ctx, r.store, registrationKey(bkt), reg, metastore.Cond{Version: ver, Fence: fence}, emit...); errors.Is(err, metastore.ErrConflict) {
		// Registered concurrently: fine if to the same place.
		if cur, _, err := r.places.registration(ctx, bkt); err == nil && cur.Location == reg.Location {
			return cur, false, nil
		}
		return Registration{}, false, ErrBucketConflict.New("bucket %q was registered concurrently to another location", bkt)
	} else if err != nil {
		return Registration{}, false, err
	}
	if err := r.store.IndexPut(ctx, locationsIndex, bkt, []byte(reg.Location)); err != nil {
		return Registration{}, false, err
	}
	if err := r.store.IndexPut(ctx, bucketsIndex, bkt, []byte("{}")); err != nil {
		return Registration{}, false, err
	}
	return reg, ver == 0, nil
}

// event is the bucket.registered or .unregistered event of reg.
func (reg Registration) event(typ string) []byte {
	return events.New(typ, reg.Bucket, "", struct {
		Name     string `json:"name"`
		Location string `json:"location"`
	}{reg.Bucket, reg.Location})
}

// count lists the location to prove it is readable and to count what is
// there, up to countLimit objects.
func count(ctx context.Context, b bucket.Backend, loc Location) (files, size int64, partial bool, err error) {
	after := ""
	for files < countLimit {
		objs, more, err := b.List(ctx, "", after, 1000)
		switch {
		case errors.Is(err, bucket.ErrNoBucket):
			return 0, 0, false, ErrLocationNotFound.New("S3 bucket %q does not exist on the configured endpoint", loc.S3Bucket)
		case errors.Is(err, bucket.ErrAccessDenied), errors.Is(err, fs.ErrPermission):
			return 0, 0, false, ErrLocationForbidden.New("Ferry may not read %s: %v", loc, err)
		case err != nil:
			return 0, 0, false, ErrLocationNotFound.Wrap(err, "cannot list %s", loc)
		}
		for _, o := range objs {
			files, size = files+1, size+o.Size
		}
		if !more {
			return files, size, false, nil
		}
		after = objs[len(objs)-1].Key
	}
	return files, size, true, nil
}

// UnregisterBucket forgets the registration and the file records under it.
// The data stays where it is.
func (r *Registry) UnregisterBucket(ctx context.Context, bkt string) (Registration, error) {
	reg, ver, err := r.places.registration(ctx, bkt)
	if err != nil {
		return Registration{}, err
	}
	// Records first: if this fails half-way, the bucket is still
	// registered and a retry finishes the job.
	for {
		entries, more, err := r.store.IndexList(ctx, filesIndex(bkt), metastore.Query{Limit: 500})
		if err != nil {
			return Registration{}, err
		}
		for _, e := range entries {
			if err := r.unindex(ctx, bkt, e); err != nil {
				return Registration{}, err
			}
		}
		if !more {
			break
		}
	}
	if err := r.store.IndexDelete(ctx, locationsIndex, bkt); err != nil {
		return Registration{}, err
	}
	if err := r.store.IndexDelete(ctx, bucketsIndex, bkt); err != nil {
		return Registration{}, err
	}
	if err := r.store.Delete(ctx, registrationKey(bkt), ver, reg.event(events.BucketUnregistered)); err != nil && !errors.Is(err, metastore.ErrNotFound) {
		return Registration{}, err
	}
	// The opened backend stays in the pool: sessions begun under the
	// registration go on writing through it, and a new registration of the
	// same location reuses it.
	return reg, nil
}

func (r *Registry) unindex(ctx context.Context, bkt string, e metastore.Entry) error {
	var f File
	if err := json.Unmarshal(e.Value, &f); err == nil && f.ID != "" {
		if err := r.store.IndexDelete(ctx, idsIndex(bkt), f.ID); err != nil {
			return err
		}
	}
	return r.store.IndexDelete(ctx, filesIndex(bkt), e.Member)
}

// RegisterFile records an object that already exists under a registered
// bucket: its size and ETag from storage, and its MIME type as stored,
// else from the extension, else sniffed from its first bytes. Registering
// it again refreshes the record and keeps its id.
func (r *Registry) RegisterFile(ctx context.Context, bkt, key string) (File, error) {
	p, err := r.places.Place(ctx, bkt)
	if err != nil {
		return File{}, err
	}
	if p.Location == "" {
		return File{}, ErrNotRegistered.New("bucket %q is not registered: register its location first with PUT /v1/files/%s", bkt, bkt)
	}
	info, err := p.Backend.Head(ctx, p.Object(key))
	if errors.Is(err, bucket.ErrNotFound) {
		return File{}, ErrFileNotFound.New("no object %q at %s", key, p.Location)
	}
	if err != nil {
		return File{}, err
	}
	f := File{Bucket: bkt, Key: key, MimeType: mimeOf(key, info.ContentType), Bytes: info.Size,
		CreatedAt: time.Now().UTC(), ETag: info.ETag}
	if f.MimeType == "" {
		f.MimeType = r.sniff(ctx, p, key)
	}
	if old, err := r.indexed(ctx, bkt, key); err == nil {
		f.ID, f.Attrs = old.ID, old.Attrs
	}
	return r.Publish(ctx, f)
}

// mimeOf is the stored type unless it is the generic one, else the type the
// extension implies, else "".
func mimeOf(key, stored string) string {
	if stored != "" && stored != "application/octet-stream" && stored != "binary/octet-stream" {
		return stored
	}
	return mime.TypeByExtension(path.Ext(key))
}

func (r *Registry) sniff(ctx context.Context, p Place, key string) string {
	rc, _, err := p.Backend.Get(ctx, p.Object(key), &bucket.Range{Length: 512})
	if err != nil {
		return "application/octet-stream"
	}
	defer rc.Close()
	head, _ := io.ReadAll(io.LimitReader(rc, 512))
	return http.DetectContentType(head)
}

// live describes an object found in a location that has no file record.
func live(bkt, key string, o bucket.ObjectInfo) File {
	m := mimeOf(key, o.ContentType)
	if m == "" {
		m = "application/octet-stream"
	}
	return File{Bucket: bkt, Key: key, MimeType: m, Bytes: o.Size, CreatedAt: o.LastModified.UTC(), ETag: o.ETag}
}

// NameFor is the bucket name a location is registered under when the
// request names only the location (Llama Stack's register_bucket, whose
// bucket is the URI): the scheme, then the S3 bucket and prefix or the
// directory, with each run of characters a bucket name cannot hold turned
// into one '-' ("s3://datasets/2024" → "s3-datasets-2024",
// "file:///srv/data" → "file-srv-data"). A name longer than a bucket name
// may be keeps its start and ends in 8 hex digits of the URI's SHA-256, so
// two long locations never share one.
func NameFor(loc Location) string {
	var b strings.Builder
	dash := false
	raw := loc.Scheme + "://" + loc.S3Bucket + "/" + loc.Prefix // the names as written, not escaped
	if loc.Scheme == "file" {
		raw = "file://" + loc.Dir
	}
	for _, c := range raw {
		if c < 0x80 && bucket.IsWordByte(byte(c)) {
			b.WriteRune(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > bucket.MaxBucketNameLen {
		sum := sha256.Sum256([]byte(loc.String()))
		name = strings.TrimRight(name[:bucket.MaxBucketNameLen-9], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	return name
}
