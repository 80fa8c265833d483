package session

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"io"
	"strings"
)

// Checksum is a client's digest of one chunk: the tus Upload-Checksum
// header ("<algo> <base64>") or Content-MD5. A chunk whose bytes do not
// match it is refused whole.
type Checksum struct {
	Algo string // sha256, sha1, md5 or crc32c
	Sum  []byte
}

var checksumAlgos = map[string]struct {
	size int
	new  func() hash.Hash
}{
	"sha256": {sha256.Size, sha256.New},
	"sha1":   {sha1.Size, sha1.New},
	"md5":    {md5.Size, md5.New},
	"crc32c": {4, func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
}

// ChecksumAlgorithms lists what ParseChecksum accepts (for Tus-Checksum-Algorithm).
const ChecksumAlgorithms = "sha256,sha1,md5,crc32c"

// ParseChecksum reads Upload-Checksum and Content-MD5 (either may be
// empty); nil when neither is set. Both set must agree on MD5 or be
// refused, since only one can be checked against the other's bytes.
func ParseChecksum(uploadChecksum, contentMD5 string) (*Checksum, error) {
	var c *Checksum
	if uploadChecksum != "" {
		algo, b64, ok := strings.Cut(strings.TrimSpace(uploadChecksum), " ")
		algo = strings.ToLower(algo)
		a, known := checksumAlgos[algo]
		if !ok || !known {
			return nil, ErrInvalidChecksum.New("Upload-Checksum %q: want \"<algorithm> <base64 digest>\" with algorithm one of %s", uploadChecksum, ChecksumAlgorithms)
		}
		sum, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(sum) != a.size {
			return nil, ErrInvalidChecksum.New("Upload-Checksum %q: the digest must be the %d-byte %s in standard base64", uploadChecksum, a.size, algo)
		}
		c = &Checksum{Algo: algo, Sum: sum}
	}
	if contentMD5 != "" {
		sum, err := base64.StdEncoding.DecodeString(strings.TrimSpace(contentMD5))
		if err != nil || len(sum) != md5.Size {
			return nil, ErrInvalidChecksum.New("Content-MD5 %q: the digest must be the 16-byte MD5 in standard base64", contentMD5)
		}
		if c != nil && (c.Algo != "md5" || string(c.Sum) != string(sum)) {
			return nil, ErrInvalidChecksum.New("send either Upload-Checksum or Content-MD5, not two different digests")
		}
		c = &Checksum{Algo: "md5", Sum: sum}
	}
	return c, nil
}

// Header renders c as an Upload-Checksum value.
func (c *Checksum) Header() string {
	return c.Algo + " " + base64.StdEncoding.EncodeToString(c.Sum)
}

// NewChecksum digests b with algo (one of ChecksumAlgorithms).
func NewChecksum(algo string, b []byte) *Checksum {
	h := checksumAlgos[algo].new()
	h.Write(b)
	return &Checksum{Algo: algo, Sum: h.Sum(nil)}
}

// verifier hashes what passes through it; check compares the result.
type verifier struct {
	want *Checksum
	h    hash.Hash
}

func newVerifier(c *Checksum) *verifier {
	if c == nil {
		return nil
	}
	return &verifier{want: c, h: checksumAlgos[c.Algo].new()}
}

// reader tees r through the hash (r itself when there is nothing to check).
func (v *verifier) reader(r io.Reader) io.Reader {
	if v == nil {
		return r
	}
	return io.TeeReader(r, v.h)
}

func (v *verifier) check() error {
	if v == nil {
		return nil
	}
	if got := v.h.Sum(nil); string(got) != string(v.want.Sum) {
		return ErrChecksumMismatch.New("the chunk's %s is %s, not the %s sent; nothing of it was kept, resend it",
			v.want.Algo, base64.StdEncoding.EncodeToString(got), base64.StdEncoding.EncodeToString(v.want.Sum))
	}
	return nil
}
