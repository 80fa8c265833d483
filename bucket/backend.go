package bucket

import (
	"context"
	"errors"
	"io"
	"time"
)

// S3's multipart limits. The filesystem backend accepts the same so that
// code written against Multipart behaves the same on both.
const (
	MinPartSize  int64 = 5 << 20 // every part but the last
	MaxPartSize  int64 = 5 << 30
	MaxParts           = 10000
	MaxPutSize   int64 = 5 << 30 // one PutObject
	MaxObjectLen int64 = MaxPartSize * MaxParts
)

var (
	// ErrNotFound: no such object or multipart upload.
	ErrNotFound = errors.New("bucket: object not found")
	// ErrInvalidRange: the requested range starts beyond the object.
	ErrInvalidRange = errors.New("bucket: range not satisfiable")
	// ErrInvalidKey: the key would escape the backend's root or is malformed.
	ErrInvalidKey = errors.New("bucket: invalid key")
	// ErrKeyConflict: on storage with real directories (a filesystem, a
	// posix S3 gateway) a key cannot be both an object and the directory of
	// other keys ("a" and "a/b").
	ErrKeyConflict = errors.New("bucket: key conflicts with an existing object or directory")
	// ErrNoBucket: the storage bucket itself is missing. It is a
	// configuration fault for Ferry's own bucket, but a user's mistake when
	// registering someone else's.
	ErrNoBucket = errors.New("bucket: storage bucket does not exist")
	// ErrBadDigest: storage refused bytes that do not match their Checksum.
	ErrBadDigest = errors.New("bucket: checksum mismatch")
	// ErrAccessDenied: the credentials may not do this.
	ErrAccessDenied = errors.New("bucket: access denied")
	// ErrChecksumUnsupported: the storage refused a full-object checksum
	// upload (PutOptions.FullObjectCRC32C).
	ErrChecksumUnsupported = errors.New("bucket: storage does not support full-object checksums")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key          string // relative to the backend's root
	Size         int64
	ETag         string // quoted or not, as the backend gives it; opaque
	LastModified time.Time
	ContentType  string // empty when the backend does not store one
}

// Range selects bytes [Offset, Offset+Length). Length < 0 means to the end.
type Range struct {
	Offset int64
	Length int64
}

// PutOptions are the optional attributes of a new object.
type PutOptions struct {
	ContentType string
	// Checksum, when set, is verified by the storage itself: the object is
	// not written unless the bytes match.
	Checksum *Checksum
	// CRC32C (Put) is the object's CRC32C, which storage verifies too.
	CRC32C *uint32
	// FullObjectCRC32C (CreateMultipart) makes the upload one whose
	// completion storage checks against the whole object's CRC32C: every
	// part must then be sent with CRC32C (UploadPart's ComputeCRC32C),
	// and CompleteMultipart sends the parts' combined CRC32C. Storage
	// that cannot refuses the create with ErrChecksumUnsupported.
	FullObjectCRC32C bool
	// Intend (StageCommit) is called with the ETag the object will have,
	// before it becomes visible at its key; an error stops the commit.
	Intend func(etag string) error
}

// ComputeCRC32C, as UploadPart's sum, asks storage to check the part's
// CRC32C, computed as it is sent (an S3 trailing checksum), and reports it
// in Part.CRC32C.
var ComputeCRC32C = &Checksum{Algo: "crc32c"}

// Part is one landed part of a multipart upload.
type Part struct {
	Number int    // 1..MaxParts
	ETag   string // as returned by UploadPart; opaque
	Size   int64
	// CRC32C of the part's bytes, when storage checked one (a part of a
	// FullObjectCRC32C upload); a session's parts index has it too. nil:
	// none. CompleteMultipart checks the whole object when every part has
	// one.
	CRC32C *uint32 `json:",omitempty"`
}

// Backend is where bytes live. Keys are relative, '/'-separated, and never
// leave the backend's root (an S3 bucket+prefix, or a directory).
type Backend interface {
	// Put stores exactly size bytes from r under key, replacing any object.
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// Get streams the object, or the range of it when rng is non-nil.
	// ErrNotFound if missing, ErrInvalidRange if rng starts past the end.
	Get(ctx context.Context, key string, rng *Range) (io.ReadCloser, ObjectInfo, error)
	// Head describes the object, or ErrNotFound.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List returns up to limit objects whose key starts with prefix and sorts
	// strictly after `after`, in key order, and whether more follow.
	List(ctx context.Context, prefix, after string, limit int) (objs []ObjectInfo, more bool, err error)
}

// Multipart is the optional capability of building one object from parts
// uploaded separately (S3 multipart upload semantics).
type Multipart interface {
	CreateMultipart(ctx context.Context, key string, opts PutOptions) (uploadID string, err error)
	// UploadPart streams exactly size bytes from r as part number n.
	// Re-uploading a number replaces that part. A non-nil sum is passed to
	// storage that can verify it; the part is refused if it does not match.
	UploadPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64, sum *Checksum) (Part, error)
	// CompleteMultipart assembles the listed parts, in order, into key.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) (ObjectInfo, error)
	// AbortMultipart discards the upload and its parts; aborting an unknown
	// or already-aborted upload is not an error.
	AbortMultipart(ctx context.Context, key, uploadID string) error
	// ListMultipart lists the uploads in progress under prefix (for purging
	// orphans and for tests that check nothing was left behind).
	ListMultipart(ctx context.Context, prefix string) ([]Upload, error)
}

// PartCopier is the optional capability of making a part of a multipart
// upload from bytes already stored in the same backend (S3's
// UploadPartCopy), so that joining objects moves no byte through ferryd.
type PartCopier interface {
	// CopyPart makes part n of the upload from the bytes rng of the object
	// src; rng.Length must be given, and obeys UploadPart's limits.
	CopyPart(ctx context.Context, key, uploadID string, n int, src string, rng Range) (Part, error)
}

// Upload is a multipart upload in progress.
type Upload struct {
	Key       string
	UploadID  string
	Initiated time.Time // zero when the store does not say
}

// Presigner is the optional capability of a short-lived URL that reads an
// object straight from storage, so a download need not pass through
// ferryd (S3's presigned GET).
type Presigner interface {
	PresignGet(ctx context.Context, key string, ttl time.Duration, opts PresignOptions) (string, error)
}

// PresignOptions are response headers the URL makes storage send.
type PresignOptions struct {
	ContentType        string
	ContentDisposition string
}

// Pinger is the optional capability of a cheap reachability check (/readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}
