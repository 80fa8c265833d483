package session

import (
	"context"
	"testing"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// A session created without a MIME type takes the one its key's extension
// names, on every store; an unknown extension stays octet-stream.
func TestCreateGuessesMimeType(t *testing.T) {
	eachStore(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for key, want := range map[string]string{
			"notes/u.txt":   "text/plain; charset=utf-8",
			"img/guess.PNG": "image/png",
			"data.parquet":  "application/vnd.apache.parquet",
			"blob.unknown1": defaultMime,
			"noext":         defaultMime,
		} {
			in, err := f.svc.Create(ctx, "b", key, "", 3)
			if err != nil {
				t.Fatal(err)
			}
			if in.MimeType != want {
				t.Errorf("%s: mime type %q, want %q", key, in.MimeType, want)
			}
			_, file, err := appendBytes(t, f, in.ID, 0, []byte("abc"))
			if err != nil || file == nil {
				t.Fatalf("%s: append: %v", key, err)
			}
			if file.MimeType != want {
				t.Errorf("%s: published with %q, want %q", key, file.MimeType, want)
			}
		}
		// A type the client gives is kept as it is.
		in, err := f.svc.Create(ctx, "b", "x.txt", "application/x-mine", 1)
		if err != nil || in.MimeType != "application/x-mine" {
			t.Fatalf("given type: %q, %v", in.MimeType, err)
		}
	})
}

// On the filesystem a key cannot be both a file and a directory of other
// keys. The conflict is visible at create, so it is refused there, not at
// the last byte.
func TestCreateRefusesKeyConflict(t *testing.T) {
	f := storesFixture(t, testsvc.Open(t, "embedded", stores))
	ctx := context.Background()
	upload(t, f, "a.bin", []byte("file"), 4)
	upload(t, f, "dir/inner", []byte("x"), 1)
	for _, key := range []string{"a.bin/sub", "a.bin/deeper/sub", "dir"} {
		_, err := f.svc.Create(ctx, "b", key, "", 1)
		if !errcode.Is(err, ErrKeyConflict) {
			t.Errorf("create %s: %v, want %s", key, err, ErrKeyConflict.Value)
		}
	}
	// Keys beside them are fine.
	for _, key := range []string{"a.bin2", "dir/other", "dir2/x"} {
		if _, err := f.svc.Create(ctx, "b", key, "", 1); err != nil {
			t.Errorf("create %s: %v", key, err)
		}
	}
}
