// Package bucket holds the bucket and key rules and the blob-backend
// interface: where bytes live. bucket/s3blob and bucket/fsblob implement it;
// bucket/backendtest is the conformance suite both pass.
package bucket

import (
	"fmt"
	"strings"
)

// MaxKeyLen bounds keys (S3's own limit is 1024 bytes).
const MaxKeyLen = 1024

// ValidateBucketName accepts 1–63 characters of a-zA-Z0-9_- (the seed's rule).
func ValidateBucketName(name string) error {
	if name == "" {
		return fmt.Errorf("bucket name is empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("bucket name %.20q… is %d characters; the limit is 63", name, len(name))
	}
	for i := 0; i < len(name); i++ {
		if !isWordByte(name[i]) {
			return fmt.Errorf("bucket name %q: character %q is not allowed; use a-z, A-Z, 0-9, '_' and '-'", name, name[i])
		}
	}
	return nil
}

// ValidateKey accepts '/'-separated keys of a-zA-Z0-9_-. (the seed's rule)
// with no empty, "." or ".." segment, so a key is always a clean relative
// path that cannot climb out of its bucket.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("key is empty")
	case len(key) > MaxKeyLen:
		return fmt.Errorf("key is %d bytes; the limit is %d", len(key), MaxKeyLen)
	case key[0] == '/':
		return fmt.Errorf("key %q starts with '/'; keys are relative to the bucket", key)
	case key[len(key)-1] == '/':
		return fmt.Errorf("key %q ends with '/'; name a file, not a directory", key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !isWordByte(c) && c != '/' && c != '.' {
			return fmt.Errorf("key %q: character %q is not allowed; use a-z, A-Z, 0-9, '_', '-', '.' and '/'", key, c)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("key %q has an empty segment ('//')", key)
		case ".", "..":
			return fmt.Errorf("key %q: %q segments are not allowed", key, seg)
		}
	}
	return nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// PartSizeFor is the smallest part size that fits a file of size bytes into
// MaxParts parts: at least MinPartSize, at most MaxPartSize.
func PartSizeFor(size int64) (int64, error) {
	if size < 0 || size > MaxObjectLen {
		return 0, fmt.Errorf("size %d is outside 0..%d, the most %d parts of %d bytes can hold", size, MaxObjectLen, MaxParts, MaxPartSize)
	}
	ps := (size + MaxParts - 1) / MaxParts
	return max(ps, MinPartSize), nil
}
