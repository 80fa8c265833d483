package bucket

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
)

// Checksum is a digest of some bytes that storage can verify on arrival:
// Put and UploadPart refuse the bytes if they do not match.
type Checksum struct {
	Algo string // one of ChecksumAlgorithms
	Sum  []byte
}

// ChecksumAlgorithms lists the algorithms a Checksum may name.
const ChecksumAlgorithms = "sha256,sha1,md5,crc32c"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewHash returns a hash for algo, or nil for an unknown one.
func NewHash(algo string) hash.Hash {
	switch algo {
	case "sha256":
		return sha256.New()
	case "sha1":
		return sha1.New()
	case "md5":
		return md5.New()
	case "crc32c":
		return crc32.New(castagnoli)
	}
	return nil
}

// NewChecksum digests b with algo (one of ChecksumAlgorithms).
func NewChecksum(algo string, b []byte) *Checksum {
	h := NewHash(algo)
	h.Write(b)
	return &Checksum{Algo: algo, Sum: h.Sum(nil)}
}

// Base64 is the digest as S3 and tus headers carry it.
func (c *Checksum) Base64() string { return base64.StdEncoding.EncodeToString(c.Sum) }

// Header renders c as a tus Upload-Checksum value.
func (c *Checksum) Header() string { return c.Algo + " " + c.Base64() }
