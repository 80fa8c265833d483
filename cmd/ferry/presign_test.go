package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/internal/testserver"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// ferry presign prints a URL that downloads the file with no key; the
// server refuses one without read access, and the CLI a TTL past 7 days.
func TestPresign(t *testing.T) {
	reader, rk := auth.NewKey("reader", []string{"photos"}, auth.Read)
	writer, wk := auth.NewKey("writer", []string{"photos"}, auth.Write)
	outsider, ok := auth.NewKey("outsider", []string{"other"}, auth.Read)
	path := filepath.Join(t.TempDir(), "keys.yaml")
	var data strings.Builder
	data.WriteString("keys:\n")
	for _, k := range []auth.Key{rk, wk, ok} {
		fmt.Fprintf(&data, "  - {name: %s, sha256: %s, buckets: [%s], access: %s}\n", k.Name, k.SHA256, k.Buckets[0], k.Access)
	}
	if err := os.WriteFile(path, []byte(data.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := auth.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.ServeKeys(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}), ring)
	src := filepath.Join(t.TempDir(), "a.bin")
	want := writeRandom(t, src, 1000)
	f := ferry{url: srv.URL, state: t.TempDir(), key: writer}
	f.must(t, "upload", src, "photos/a.bin")

	f.key = reader
	url := strings.TrimSpace(f.must(t, "presign", "photos/a.bin", "--ttl", "10m"))
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("GET %s without a key: %d, %d bytes", url, resp.StatusCode, len(got))
	}
	f.key = outsider
	if _, errOut, err := f.run(t, "presign", "photos/a.bin"); err == nil || !strings.Contains(errOut+err.Error(), "FORBIDDEN") {
		t.Fatalf("presign without read on the bucket: %v %s", err, errOut)
	}
	f.key = reader
	if _, _, err := f.run(t, "presign", "photos/a.bin", "--ttl", "200h"); !errors.Is(err, errUsage) {
		t.Fatalf("--ttl 200h: %v", err)
	}
}
