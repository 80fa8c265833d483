package session

import (
	"crypto/md5"
	"encoding/base64"
	"hash"
	"io"
	"strings"

	"github.com/ferryhq/ferry/bucket"
)

// Checksum is a client's digest of one chunk: the tus Upload-Checksum
// header ("<algo> <base64>") or Content-MD5. A chunk whose bytes do not
// match it is refused whole.
type Checksum = bucket.Checksum

// ChecksumAlgorithms lists what ParseChecksum accepts (for Tus-Checksum-Algorithm).
const ChecksumAlgorithms = bucket.ChecksumAlgorithms

// NewChecksum digests b with algo (one of ChecksumAlgorithms).
func NewChecksum(algo string, b []byte) *Checksum { return bucket.NewChecksum(algo, b) }

// ParseChecksum reads Upload-Checksum and Content-MD5 (either may be
// empty); nil when neither is set. Both set must name the same MD5, since
// only one digest is checked.
func ParseChecksum(uploadChecksum, contentMD5 string) (*Checksum, error) {
	var c *Checksum
	if uploadChecksum != "" {
		algo, b64, ok := strings.Cut(strings.TrimSpace(uploadChecksum), " ")
		algo = strings.ToLower(algo)
		h := bucket.NewHash(algo)
		if !ok || h == nil {
			return nil, ErrInvalidChecksum.New("Upload-Checksum %q: want \"<algorithm> <base64 digest>\" with algorithm one of %s", uploadChecksum, ChecksumAlgorithms)
		}
		sum, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil || len(sum) != h.Size() {
			return nil, ErrInvalidChecksum.New("Upload-Checksum %q: the digest must be the %d-byte %s in standard base64", uploadChecksum, h.Size(), algo)
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

// verifier hashes what passes through it; check compares the result.
// A nil verifier checks nothing.
type verifier struct {
	want *Checksum
	h    hash.Hash
}

func newVerifier(c *Checksum) *verifier {
	if c == nil {
		return nil
	}
	return &verifier{want: c, h: bucket.NewHash(c.Algo)}
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
			v.want.Algo, base64.StdEncoding.EncodeToString(got), v.want.Base64())
	}
	return nil
}
