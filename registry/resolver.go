package registry

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/metastore"
)

// Resolver maps buckets to where their objects live: Ferry's own storage,
// or the location a bucket is registered at, confined to the allowed roots
// and opened once. It reads registrations; Registry writes them.
type Resolver struct {
	store metastore.Store
	own   bucket.Composer
	locs  Locations

	mu     sync.Mutex
	opened map[string]bucket.Composer // by location URI
}

// NewResolver returns a resolver over Ferry's own storage and the
// locations that may be registered.
func NewResolver(store metastore.Store, own bucket.Composer, locs Locations) *Resolver {
	return &Resolver{store: store, own: own, locs: locs, opened: map[string]bucket.Composer{}}
}

// Locations says which locations may be registered and how to open them.
type Locations struct {
	// Roots are the directories under which file:// locations may lie.
	// None disables file:// registration.
	Roots []string
	// OpenDir serves a directory; nil disables file:// registration.
	OpenDir func(dir string) (bucket.Composer, error)
	// OpenS3 serves a bucket and prefix on the configured endpoint; nil
	// (no S3 configured) disables s3:// registration.
	OpenS3 func(bkt, prefix string) (bucket.Composer, error)
	// S3Buckets are the S3 buckets s3:// locations may name; "*" allows
	// any. None disables s3:// registration.
	S3Buckets []string
	// Own is Ferry's own storage, which no registration may overlap.
	Own []Location
}

// check resolves and vets a location for use: the canonical form, with a
// file:// directory's symlinks resolved.
func (r *Resolver) check(uri string) (Location, error) {
	loc, err := ParseLocation(uri)
	if err != nil {
		return Location{}, err
	}
	switch loc.Scheme {
	case "s3":
		if r.locs.OpenS3 == nil {
			return Location{}, ErrInvalidLocation.New("s3:// locations need S3: this server has none configured (set FERRY_S3_BUCKET, and FERRY_S3_ENDPOINT for an S3-compatible store)")
		}
		if !slices.Contains(r.locs.S3Buckets, "*") && !slices.Contains(r.locs.S3Buckets, loc.S3Bucket) {
			return Location{}, ErrLocationForbidden.New("S3 bucket %q is not in registration.allowed_s3_buckets (FERRY_ALLOWED_S3_BUCKETS): list the buckets that may be served", loc.S3Bucket)
		}
	case "file":
		if loc, err = r.confine(loc); err != nil {
			return Location{}, err
		}
	}
	for _, own := range r.locs.Own {
		if loc.Overlaps(own) {
			return Location{}, ErrLocationForbidden.New("location %s overlaps Ferry's own storage; register data that lives elsewhere", loc)
		}
	}
	return loc, nil
}

// confine checks a file:// location against the allowed roots, before and
// after resolving symlinks, and returns it resolved. Whether a path exists
// is only revealed for paths under a root.
func (r *Resolver) confine(loc Location) (Location, error) {
	if len(r.locs.Roots) == 0 || r.locs.OpenDir == nil {
		return Location{}, ErrInvalidLocation.New("file:// locations are disabled on this server: list the directories that may be registered in registration.allowed_roots (FERRY_ALLOWED_ROOTS)")
	}
	inRoots := func(dir string) bool {
		for _, root := range r.locs.Roots {
			if within(dir, root) {
				return true
			}
			if real, err := filepath.EvalSymlinks(root); err == nil && within(dir, real) {
				return true
			}
		}
		return false
	}
	if !inRoots(loc.Dir) {
		return Location{}, ErrLocationForbidden.New("%s is not under a directory allowed by registration.allowed_roots", loc)
	}
	real, err := filepath.EvalSymlinks(loc.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Location{}, ErrLocationNotFound.New("directory %s does not exist", loc.Dir)
	case err != nil:
		return Location{}, ErrLocationForbidden.New("cannot resolve %s: %v", loc.Dir, errors.Unwrap(err))
	case !inRoots(real):
		return Location{}, ErrLocationForbidden.New("%s resolves through a symbolic link to a directory outside registration.allowed_roots", loc)
	}
	if err := noStaging(real); err != nil {
		return Location{}, ErrInvalidLocation.New("location %s, with its symbolic links resolved: %v", loc, err)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return Location{}, ErrInvalidLocation.New("%s is not a directory", loc)
	}
	return Location{Scheme: "file", Dir: real}, nil
}

// Backend opens the backend of a checked location URI ("" is Ferry's own
// storage). Backends are opened once and kept.
func (r *Resolver) Backend(uri string) (bucket.Composer, error) {
	if uri == "" {
		return r.own, nil
	}
	r.mu.Lock()
	b, ok := r.opened[uri]
	r.mu.Unlock()
	if ok {
		return b, nil
	}
	loc, err := r.check(uri)
	if err != nil {
		return bucket.Composer{}, err
	}
	switch loc.Scheme {
	case "s3":
		b, err = r.locs.OpenS3(loc.S3Bucket, loc.Prefix)
	default:
		b, err = r.locs.OpenDir(loc.Dir)
	}
	if err != nil {
		return bucket.Composer{}, ErrLocationNotFound.Wrap(err, "cannot open %s", loc)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.opened[uri]; ok {
		_ = b.Close()
		return prev, nil
	}
	r.opened[uri] = b
	return b, nil
}

// Place is where a bucket's objects live.
type Place struct {
	Location  string // "" for Ferry's own storage
	Backend   bucket.Backend
	Presigner bucket.Presigner // nil: the storage hands out no URLs (the filesystem)
	prefix    string
}

// Object is the backend key of the bucket's key.
func (p Place) Object(key string) string { return p.prefix + key }

// Place resolves a bucket to its storage.
func (r *Resolver) Place(ctx context.Context, bkt string) (Place, error) {
	reg, _, err := r.registration(ctx, bkt)
	if errcode.Is(err, ErrNotRegistered) {
		return Place{Backend: r.own.Backend, Presigner: r.own.Presigner, prefix: ObjectKey(bkt, "")}, nil
	}
	if err != nil {
		return Place{}, err
	}
	b, err := r.Backend(reg.Location)
	if err != nil {
		return Place{}, err
	}
	return Place{Location: reg.Location, Backend: b.Backend, Presigner: b.Presigner}, nil
}

func (r *Resolver) registration(ctx context.Context, bkt string) (Registration, int64, error) {
	reg, ver, err := metastore.GetJSON[Registration](ctx, r.store, registrationKey(bkt))
	if errors.Is(err, metastore.ErrNotFound) {
		return Registration{}, 0, ErrNotRegistered.New("bucket %q is not registered", bkt)
	}
	return reg, ver, err
}

// Registration returns the bucket's registration, or ErrNotRegistered.
func (r *Resolver) Registration(ctx context.Context, bkt string) (Registration, error) {
	reg, _, err := r.registration(ctx, bkt)
	return reg, err
}
