package bucket

import (
	"path"
	"testing"
)

// A bucket name becomes a path segment of object keys and a directory name
// on the filesystem backend: an accepted one is 1 to 63 bytes of
// a-zA-Z0-9_-, so it is also one clean key segment (never ".", "..", a
// separator or a staging directory), and never has the form of an OpenAI
// file id, which /v1/files/<id> serves.
func FuzzValidateBucketName(f *testing.F) {
	for _, s := range []string{"images", "a", "A-Z_0-9", "", ".", "..", "a/b", "a.b", "a b", "a\x00", "ü",
		"-", "_", ".ferry-staging", "session:abc", "b%2F..", "x\\y",
		"file-0123456789abcdef0123456789abcdef", "file-0123456789ABCDEF0123456789ABCDEF", "file-0123456789abcdef0123456789abcde",
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk",  // 63
		"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl", // 64
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateBucketName(name) != nil {
			return
		}
		if len(name) < 1 || len(name) > MaxBucketNameLen {
			t.Fatalf("accepted a %d-byte bucket name", len(name))
		}
		for i := 0; i < len(name); i++ {
			if !IsWordByte(name[i]) {
				t.Fatalf("accepted %q with byte %q", name, name[i])
			}
		}
		if err := ValidateKey(name); err != nil || path.Clean(name) != name || IsStagingSegment(name) {
			t.Fatalf("accepted bucket name %q that is not one clean key segment: %v", name, err)
		}
		if fileID.MatchString(name) {
			t.Fatalf("accepted bucket name %q, which is an OpenAI file id's path", name)
		}
	})
}
