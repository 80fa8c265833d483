package session

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
)

// An accepted checksum names a known algorithm, carries exactly that
// algorithm's digest length, and renders back to a header that parses to
// the same checksum; a refused one is INVALID_CHECKSUM (400), never an
// internal error.
func FuzzParseChecksum(f *testing.F) {
	md5Zero := base64.StdEncoding.EncodeToString(make([]byte, 16))
	for _, s := range [][2]string{
		{"", ""},
		{"sha256 " + NewChecksum("sha256", []byte("x")).Base64(), ""},
		{"SHA1 " + NewChecksum("sha1", []byte("x")).Base64(), ""},
		{"crc32c AAAAAA==", ""},
		{"md5 " + md5Zero, md5Zero},                    // both, agreeing
		{"md5 " + md5Zero, "AAAAAAAAAAAAAAAAAAAAAQ=="}, // both, disagreeing
		{"sha256 " + md5Zero, md5Zero},                 // a digest of the wrong length
		{"", md5Zero},
		{"", " " + md5Zero + " "},
		{"crc64 AAAAAAAAAAA=", ""},
		{"sha256", ""},
		{" sha256  " + NewChecksum("sha256", nil).Base64(), ""},
		{"sha256\t" + NewChecksum("sha256", nil).Base64(), ""},
		{"md5 AAAAAAAAAAAAAAAAAAAAAA", ""}, // unpadded
		{"md5 AAAAAAAAAAAAAAAAAAAAAA==", ""},
		{"crc32c ////", ""},
		{"crc32c -_-_-_==", ""}, // URL alphabet
		{"", "!!!"},
		{"md5 " + md5Zero + "\x00", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, uploadChecksum, contentMD5 string) {
		c, err := ParseChecksum(uploadChecksum, contentMD5)
		if err != nil {
			if !errcode.Is(err, ErrInvalidChecksum) {
				t.Fatalf("(%q, %q): error %v is not INVALID_CHECKSUM", uploadChecksum, contentMD5, err)
			}
			return
		}
		if c == nil {
			if uploadChecksum != "" || contentMD5 != "" {
				t.Fatalf("(%q, %q): accepted without a checksum", uploadChecksum, contentMD5)
			}
			return
		}
		h := bucket.NewHash(c.Algo)
		if h == nil || !strings.Contains(","+ChecksumAlgorithms+",", ","+c.Algo+",") {
			t.Fatalf("(%q, %q): accepted unknown algorithm %q", uploadChecksum, contentMD5, c.Algo)
		}
		if len(c.Sum) != h.Size() {
			t.Fatalf("(%q, %q): %s digest of %d bytes, want %d", uploadChecksum, contentMD5, c.Algo, len(c.Sum), h.Size())
		}
		if contentMD5 != "" && c.Algo != "md5" {
			t.Fatalf("(%q, %q): Content-MD5 sent but %s checked", uploadChecksum, contentMD5, c.Algo)
		}
		again, err := ParseChecksum(c.Header(), "")
		if err != nil || again.Algo != c.Algo || !bytes.Equal(again.Sum, c.Sum) {
			t.Fatalf("(%q, %q) → %q does not parse back: %+v, %v", uploadChecksum, contentMD5, c.Header(), again, err)
		}
	})
}
