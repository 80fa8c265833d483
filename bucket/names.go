// Package bucket holds the bucket and key rules and the blob-backend
// interface: where bytes live. bucket/s3blob and bucket/fsblob implement it;
// bucket/backendtest is the conformance suite both pass.
package bucket

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// MaxKeyLen bounds keys (S3's own limit is 1024 bytes).
const MaxKeyLen = 1024

// MaxSegmentLen bounds each '/'-separated segment of a key: a segment is a
// file or directory name on the filesystem backend (and on posix S3
// gateways), and filesystems refuse longer names (NAME_MAX).
const MaxSegmentLen = 255

// StagingSegment is the name of the directory a served directory stages
// writes in (fsblob.NewDir). No key may have a segment of that name, in any
// letter case since filesystems may fold case, so no key can reach the
// staging files of any directory, its own or one nested in it.
const StagingSegment = ".ferry-staging"

// IsStagingSegment reports whether a key or path segment names a staging
// directory, ignoring letter case.
func IsStagingSegment(seg string) bool { return strings.EqualFold(seg, StagingSegment) }

// MaxBucketNameLen bounds bucket names.
const MaxBucketNameLen = 63

// ValidateBucketName accepts 1–63 characters of a-zA-Z0-9_-.
func ValidateBucketName(name string) error {
	if name == "" {
		return fmt.Errorf("bucket name is empty; use 1 to %d characters of a-z, A-Z, 0-9, '_' and '-'", MaxBucketNameLen)
	}
	if len(name) > MaxBucketNameLen {
		return fmt.Errorf("bucket name %.20q… is %d characters; the limit is %d", name, len(name), MaxBucketNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !IsWordByte(name[i]) {
			return fmt.Errorf("bucket name %q: character %q is not allowed; use a-z, A-Z, 0-9, '_' and '-'", name, name[i])
		}
	}
	if fileID.MatchString(name) {
		return fmt.Errorf("bucket name %q has the form of an OpenAI file id, which /v1/files/%s serves; choose another name", name, name)
	}
	return nil
}

// fileID is the form of OpenAI file ids (registry.NewFileID).
var fileID = regexp.MustCompile(`^file-[0-9a-f]{32}$`)

// ValidateKey accepts '/'-separated keys of a-zA-Z0-9_-. with no empty, "."
// or ".." segment, so a key is always a clean relative path that cannot
// climb out of its bucket, on S3 or on a filesystem. ".." inside a segment
// ("v1..v2") is an ordinary name and allowed. No segment may be longer than
// MaxSegmentLen bytes (no filesystem could store it) or be StagingSegment.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("key is empty")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("key %.20q… is %d bytes; the limit is %d", key, len(key), MaxKeyLen)
	case key[0] == '/':
		return fmt.Errorf("key %q starts with '/'; keys are relative to the bucket, drop the leading '/'", key)
	case key[len(key)-1] == '/':
		return fmt.Errorf("key %q ends with '/'; name a file, not a directory", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !IsWordByte(c) && c != '/' && c != '.' {
			return fmt.Errorf("key %q: character %q is not allowed; use a-z, A-Z, 0-9, '_', '-', '.' and '/'", key, c)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key %q has an empty segment ('//'); use a single '/'", key)
		case ".", "..":
			return fmt.Errorf("key %q: %q segments are not allowed", key, seg)
		}
		if len(seg) > MaxSegmentLen {
			return fmt.Errorf("key %.40q…: segment %.20q… is %d bytes; each part between '/' may be at most %d bytes (a file name's limit on filesystems), so shorten it or split it with '/'", key, seg, len(seg), MaxSegmentLen)
		}
		if IsStagingSegment(seg) {
			return fmt.Errorf("key %q: %q is reserved for Ferry's staging files and cannot be part of a key, in any letter case; rename that part", key, seg)
		}
	}
	return nil
}

// IsWordByte reports whether c may be part of a bucket name.
func IsWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// ValidS3Bucket reports whether name is a valid S3 bucket name: 3–63
// characters of a-z, 0-9, '.' and '-'.
func ValidS3Bucket(name string) bool {
	if len(name) < 3 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// SafeName turns a client's filename into one key segment of allowed
// characters (and a safe Content-Disposition filename).
func SafeName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.Trim(b.String(), ".")
	if len(out) > 200 {
		out = out[len(out)-200:]
	}
	if out == "" {
		return "file"
	}
	return out
}
