package registry

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// Found by FuzzParseLocation: a directory whose name holds '%', '?' or '#'
// (written percent-encoded, as a URI must) was stored under a canonical
// form that did not parse back to it, so the registration served another
// directory ("a%41" became "aA") or none at all. The canonical form now
// escapes the path.
func TestRegisterDirectoryWithURISpecialCharacters(t *testing.T) {
	meta, blobs := testsvc.Embedded(t)
	root := t.TempDir()
	r := New(meta, NewResolver(meta, bucket.Compose(blobs), Locations{Roots: []string{root}, OpenDir: openDir}))
	ctx := context.Background()
	for _, d := range []string{"a%41", "aA", "q?b", "h#x", "sp ace"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ bkt, escaped, dir string }{
		{"pct", "a%2541", "a%41"}, {"query", "q%3Fb", "q?b"}, {"frag", "h%23x", "h#x"}, {"space", "sp%20ace", "sp ace"},
	} {
		if err := os.WriteFile(filepath.Join(root, c.dir, "only-here.txt"), []byte(c.dir), 0o644); err != nil {
			t.Fatal(err)
		}
		reg := registerOK(t, r, c.bkt, "file://"+root+"/"+c.escaped, true)
		loc, err := ParseLocation(reg.Location)
		if err != nil || loc.Dir != filepath.Join(root, c.dir) {
			t.Fatalf("%s: stored location %q parses to %+v, %v; want directory %q", c.bkt, reg.Location, loc, err, c.dir)
		}
		page, err := r.List(ctx, c.bkt, "", "", 10)
		if err != nil || len(page.Data) != 1 || page.Data[0].Key != "only-here.txt" || reg.Files != 1 {
			t.Fatalf("%s: lists %+v (%d counted), %v; want only-here.txt from %q", c.bkt, page.Data, reg.Files, err, c.dir)
		}
		registerOK(t, r, c.bkt, reg.Location, false) // the stored form registers as the same location
	}
}
