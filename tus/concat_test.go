package tus_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/tus"
)

// tus concatenation: partial uploads of any size (under S3's 5 MiB part
// minimum too) join into the final upload, which is complete at creation;
// HEAD says which is which, the partials are gone afterwards, and a final
// naming an unfinished partial is refused.
func TestConcatenation(t *testing.T) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		in := serve(t, s, session.Config{})
		resp := req(t, http.MethodOptions, in.srv.URL+tus.BasePath, nil)
		if !strings.Contains(resp.Header.Get("Tus-Extension"), "concatenation") {
			t.Fatalf("Tus-Extension %q lacks concatenation", resp.Header.Get("Tus-Extension"))
		}
		var all []byte
		var urls []string
		for _, n := range []int{3 << 20, 7 << 20, 1 << 20} {
			data := randomBytes(t, n)
			all = append(all, data...)
			u := create(t, in, int64(n), "", "Upload-Concat", "partial")
			wantStatus(t, patch(t, u, 0, data), http.StatusNoContent, "PATCH partial")
			head := req(t, http.MethodHead, u, nil)
			if head.Header.Get("Upload-Concat") != "partial" {
				t.Fatalf("HEAD of a partial: Upload-Concat %q", head.Header.Get("Upload-Concat"))
			}
			urls = append(urls, u)
		}
		unfinished := create(t, in, 10, "", "Upload-Concat", "partial")
		resp = req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil,
			"Upload-Concat", "final;"+urls[0]+" "+unfinished, "Upload-Metadata", metadata("bucket", "cat", "key", "bad.bin"))
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("final with an unfinished partial: %d", resp.StatusCode)
		}

		resp = req(t, http.MethodPost, in.srv.URL+tus.BasePath, nil,
			"Upload-Concat", "final;"+strings.Join(urls, " "), "Upload-Metadata", metadata("bucket", "cat", "key", "joined.bin"))
		wantStatus(t, resp, http.StatusCreated, "POST final")
		final := resp.Header.Get("Location")
		head := req(t, http.MethodHead, final, nil)
		wantStatus(t, head, http.StatusOK, "HEAD final")
		if got := head.Header.Get("Upload-Concat"); !strings.HasPrefix(got, "final;") || strings.Count(got, tus.BasePath) != 3 {
			t.Fatalf("HEAD of the final: Upload-Concat %q", got)
		}
		if f, got := nativeFile(t, in, "cat", "joined.bin"); f.Bytes != int64(len(all)) || !bytes.Equal(got, all) {
			t.Fatalf("the final file: %d bytes, equal %v", f.Bytes, bytes.Equal(got, all))
		}
		for _, u := range urls {
			wantStatus(t, req(t, http.MethodHead, u, nil), http.StatusNotFound, "HEAD of a joined partial")
		}
		// Terminating an unused partial frees it.
		wantStatus(t, req(t, http.MethodDelete, unfinished, nil), http.StatusNoContent, "DELETE partial")
	})
}
