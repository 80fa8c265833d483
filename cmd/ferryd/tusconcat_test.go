package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testhttp"
)

// tus concatenations with empty pieces, or only empty ones: S3 refuses a
// multipart upload of no parts, so an empty result is one Put. Each final
// is created (201) and downloads as the pieces joined.
func TestTusConcatOfEmptyPieces(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		base := "http://" + p.addr
		for i, sizes := range [][]int{{0}, {0, 0}, {0, 3}, {3, 0}, {5*MiB + 1, 0, 3}} {
			var locs []string
			var joined []byte
			for _, n := range sizes {
				data := randomData(n)
				joined = append(joined, data...)
				locs = append(locs, tusPost(t, base, data, "", "Upload-Concat", "partial").Header.Get("Location"))
			}
			name := fmt.Sprintf("empty%d.bin", i)
			r := testhttp.Do(t, http.MethodPost, base+"/v1/tus/", nil, "Tus-Resumable", "1.0.0",
				"Upload-Concat", "final;"+strings.Join(locs, " "), "Upload-Metadata", "bucket "+b64("tus")+",filename "+b64(name))
			if r.Code != http.StatusCreated {
				t.Fatalf("pieces of %v bytes: final %d %s", sizes, r.Code, r.Body)
			}
			if got := download(t, base+"/v1/files/tus/"+name+":content"); !bytes.Equal(got, joined) {
				t.Fatalf("pieces of %v bytes: the file has %d bytes, want %d", sizes, len(got), len(joined))
			}
		}
	})
}
