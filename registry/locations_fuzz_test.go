package registry

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
)

// A location is client input that names storage. An accepted one is s3://
// with a valid S3 bucket and a clean key prefix (so it cannot name a host
// or climb out of the bucket), or file:// with a clean absolute directory
// outside any staging directory; and its canonical form (what a
// registration stores and reopens) parses back to the very same location.
// Anything refused is INVALID_LOCATION (400).
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"s3://datasets", "s3://datasets/2024/", "s3://datasets//2024", "s3://datasets/a/../b", "s3://Data_Sets",
		"s3://10.0.0.1:9000/x", "s3://user@datasets", "s3://datasets?versionId=1", "s3://datasets#frag", "s3://[::1]/x",
		"s3://datasets/%2e%2e/x", "s3://datasets/a%2Fb", "s3://datasets/.ferry-staging", "s3:datasets", "S3://datasets",
		"file:///srv/data", "file://localhost/srv/data/", "file:///srv/data/../../etc", "file://srv/data", "file:relative",
		"file:///srv/data/%2e%2e/x", "file:///srv/a%2Fb", "file:///srv/a%00b", "file:///srv/100%25", "file:///srv/a%3Fb",
		"file:///srv/a%23b", "file:///srv/a%2541", "file:///srv/a%20b", "file:///srv/a%0Ab", "file:///srv/.FERRY-staging/x",
		"file:////srv", "file:///", "file://[::1]/x", "file:///C:/data", "file:///srv\\..\\etc",
		"http://example.com/x", "/srv/data", "", "%zz", "//datasets/x", "s3://", "file://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		loc, err := ParseLocation(uri)
		if err != nil {
			if !errcode.Is(err, ErrInvalidLocation) {
				t.Fatalf("%q: error %v is not INVALID_LOCATION", uri, err)
			}
			return
		}
		switch loc.Scheme {
		case "s3":
			if !bucket.ValidS3Bucket(loc.S3Bucket) || loc.Dir != "" {
				t.Fatalf("%q → %+v: not an S3 bucket", uri, loc)
			}
			if loc.Prefix != "" && bucket.ValidateKey(loc.Prefix) != nil {
				t.Fatalf("%q → %+v: prefix is not a clean key", uri, loc)
			}
		case "file":
			if !filepath.IsAbs(loc.Dir) || filepath.Clean(loc.Dir) != loc.Dir || strings.ContainsRune(loc.Dir, 0) || loc.S3Bucket != "" || loc.Prefix != "" {
				t.Fatalf("%q → %+v: not a clean absolute directory", uri, loc)
			}
			if noStaging(loc.Dir) != nil {
				t.Fatalf("%q → %+v: inside a staging directory", uri, loc)
			}
		default:
			t.Fatalf("%q → scheme %q", uri, loc.Scheme)
		}
		again, err := ParseLocation(loc.String())
		if err != nil || again != loc {
			t.Fatalf("%q → %+v, whose canonical form %q parses to %+v, %v", uri, loc, loc.String(), again, err)
		}
	})
}
