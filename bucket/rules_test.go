package bucket

import (
	"path"
	"strings"
	"testing"
)

func TestValidateBucketName(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "images": true, "A-b_9": true, strings.Repeat("b", 63): true,
		"": false, strings.Repeat("b", 64): false, "a.b": false, "a/b": false, "a b": false,
		"session:x": false, "ü": false,
	} {
		if err := ValidateBucketName(name); (err == nil) != ok {
			t.Errorf("ValidateBucketName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"a": true, "a/b/c.txt": true, "dir/content": true, ".hidden": true, "a..b": true, "x/...": true,
		strings.Repeat("k", MaxKeyLen): true,
		"":                             false, strings.Repeat("k", MaxKeyLen+1): false, "/a": false, "a/": false, "a//b": false,
		"..": false, "a/../b": false, "a/./b": false, ".": false, "a/..": false,
		"nul\x00": false, "bell\x07": false, "new\nline": false, "sp ace": false, `back\slash`: false,
		"colon:content": false, "ü": false,
	} {
		if err := ValidateKey(key); (err == nil) != ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", key, err, ok)
		}
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "./a", "a/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		if strings.HasPrefix(key, "/") || path.Clean(key) != key || strings.Contains("/"+key+"/", "/../") {
			t.Fatalf("accepted unsafe key %q", key)
		}
	})
}

func TestPartSizeFor(t *testing.T) {
	cases := []struct {
		size, want int64
		err        bool
	}{
		{0, MinPartSize, false},
		{1, MinPartSize, false},
		{MinPartSize * MaxParts, MinPartSize, false},
		{MinPartSize*MaxParts + 1, MinPartSize + 1, false},
		{MaxObjectLen, MaxPartSize, false},
		{MaxObjectLen + 1, 0, true},
		{-1, 0, true},
	}
	for _, tc := range cases {
		got, err := PartSizeFor(tc.size)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("PartSizeFor(%d) = %d, %v; want %d (err %v)", tc.size, got, err, tc.want, tc.err)
		}
		if err == nil && (got*MaxParts < tc.size || got > MaxPartSize) {
			t.Errorf("PartSizeFor(%d) = %d cannot hold the file in %d parts", tc.size, got, MaxParts)
		}
	}
}
