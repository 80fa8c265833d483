package bucket

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateBucketName(t *testing.T) {
	cases := []struct {
		name string
		hint string // in the error; "" means valid
	}{
		{"a", ""},
		{"images", ""},
		{"A-b_9", ""},
		{"-", ""},
		{strings.Repeat("b", 62), ""},
		{strings.Repeat("b", 63), ""},
		{strings.Repeat("b", 64), "the limit is 63"},
		{"", "is empty"},
		{"a.b", `character '.' is not allowed`},
		{"a/b", `character '/' is not allowed`},
		{"a b", `character ' ' is not allowed`},
		{"session:x", `character ':' is not allowed`},
		{"nul\x00", `character '\x00'`},
		{"ü", "is not allowed"},
	}
	for _, tc := range cases {
		err := ValidateBucketName(tc.name)
		switch {
		case tc.hint == "" && err != nil:
			t.Errorf("ValidateBucketName(%q) = %v, want ok", tc.name, err)
		case tc.hint != "" && (err == nil || !strings.Contains(err.Error(), tc.hint)):
			t.Errorf("ValidateBucketName(%q) = %v, want an error mentioning %q", tc.name, err, tc.hint)
		}
	}
}

func TestValidateKey(t *testing.T) {
	cases := []struct {
		key  string
		hint string // in the error; "" means valid
	}{
		{"a", ""},
		{"a/b/c.txt", ""},
		{"dir/content", ""},
		{".hidden", ""},
		{"a/.hidden", ""},
		{"a..b", ""},
		{"x/...", ""},
		{"..a", ""},
		{"a/b..", ""},
		{"A-Z_0-9", ""},
		{strings.Repeat("k", MaxSegmentLen), ""},
		{strings.Repeat("k", MaxSegmentLen) + "/" + strings.Repeat("k", MaxSegmentLen), ""},
		{strings.Repeat(strings.Repeat("k", MaxSegmentLen-1)+"/", 4) + "kkkk", ""}, // 1024 bytes
		{strings.Repeat("k/", MaxKeyLen/2-1) + "kk", ""},
		{strings.Repeat("k/", MaxKeyLen/2) + "k", "the limit is 1024"},
		{strings.Repeat("k", MaxKeyLen+1), "the limit is 1024"},
		// A segment is a file name on a filesystem: at most 255 bytes.
		{strings.Repeat("k", MaxSegmentLen+1), "is 256 bytes; each part between '/' may be at most 255 bytes"},
		{"dir/" + strings.Repeat("k", MaxSegmentLen+1) + "/x", "is 256 bytes"},
		{strings.Repeat("k", MaxKeyLen), "is 1024 bytes; each part between '/' may be at most 255"},
		// Staging directories are unreachable, in any letter case.
		{".ferry-staging", `".ferry-staging" is reserved`},
		{".ferry-staging/sessions/0123", `".ferry-staging" is reserved`},
		{"sub/.ferry-staging/sessions/0123", `".ferry-staging" is reserved`},
		{"a/b/.FERRY-Staging", `".FERRY-Staging" is reserved`},
		{"x/.Ferry-Staging/tmp/y", "reserved for Ferry's staging files"},
		{"ferry-staging", ""},
		{".ferry-staging2", ""},
		{"a.ferry-staging", ""},
		{"x/.ferry-staging.txt", ""},
		{"", "key is empty"},
		{"/", "starts with '/'"},
		{"/a", "starts with '/'"},
		{"a/", "ends with '/'"},
		{"a//b", "empty segment"},
		{"..", `".." segments are not allowed`},
		{"../a", `".." segments are not allowed`},
		{"a/../b", `".." segments are not allowed`},
		{"a/..", `".." segments are not allowed`},
		{".", `"." segments are not allowed`},
		{"./a", `"." segments are not allowed`},
		{"a/./b", `"." segments are not allowed`},
		{"a/.", `"." segments are not allowed`},
		{"nul\x00", `character '\x00' is not allowed`},
		{"bell\x07", `character '\a' is not allowed`},
		{"new\nline", `character '\n' is not allowed`},
		{"sp ace", `character ' ' is not allowed`},
		{`back\slash`, `character '\\' is not allowed`},
		{"colon:content", `character ':' is not allowed`},
		{"ü", "is not allowed"},
		{"a*", "is not allowed"},
	}
	for _, tc := range cases {
		err := ValidateKey(tc.key)
		switch {
		case tc.hint == "" && err != nil:
			t.Errorf("ValidateKey(%.40q) = %v, want ok", tc.key, err)
		case tc.hint != "" && (err == nil || !strings.Contains(err.Error(), tc.hint)):
			t.Errorf("ValidateKey(%.40q) = %v, want an error mentioning %q", tc.key, err, tc.hint)
		}
	}
	if err := ValidateKey("a/../b"); err == nil || err.Error() != `key "a/../b": ".." segments are not allowed` {
		t.Errorf("message = %v", err)
	}
}

// An accepted key has no ".." segment (".." inside a name, as in "v1..v2",
// is harmless and allowed), is relative, and is already clean.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "./a", "a/..", "a..b", "/a", "a/", ".", "a\\b", "a/.b/c", "a/.ferry-staging/b", ".FERRY-STAGING"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		switch {
		case strings.HasPrefix(key, "/"):
			t.Fatalf("accepted absolute key %q", key)
		case strings.Contains("/"+key+"/", "/../"):
			t.Fatalf("accepted key with a '..' segment %q", key)
		case path.Clean(key) != key:
			t.Fatalf("accepted unclean key %q (clean: %q)", key, path.Clean(key))
		case !filepath.IsLocal(key):
			t.Fatalf("accepted key %q that is not local on this OS", key)
		case len(key) > MaxKeyLen:
			t.Fatalf("accepted a %d-byte key", len(key))
		}
		for seg := range strings.SplitSeq(key, "/") {
			if len(seg) > MaxSegmentLen || strings.EqualFold(seg, StagingSegment) {
				t.Fatalf("accepted key %.40q with segment %.40q", key, seg)
			}
		}
	})
}
