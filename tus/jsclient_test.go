package tus_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/session"
	"github.com/ferryhq/ferry/tus"
)

// jsRun is what testdata/upload.js reports.
type jsRun struct {
	URL     string `json:"url"`
	Resumed bool   `json:"resumed"`
	Outcome string `json:"outcome"`
}

// TestTusJSClient uploads 64 MiB with the real tus-js-client 4 in 8 MiB
// PATCHes, interrupted twice: it aborts at 16 MiB, then a new run finds the
// upload through findPreviousUploads, resumes, and aborts at 40 MiB, and a
// third run finishes.
// The bytes come back through the native :content route.
func TestTusJSClient(t *testing.T) {
	mods := testsvc.NodeModules(t, "tus-js-client@4")
	script, err := filepath.Abs("testdata/upload.js")
	if err != nil {
		t.Fatal(err)
	}
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		in := serve(t, s, session.Config{})
		dir := t.TempDir()
		data := randomBytes(t, 64<<20)
		file := filepath.Join(dir, "big.bin")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		storage := filepath.Join(dir, "urls.json")
		run := func(abortAt int) jsRun {
			t.Helper()
			cmd := exec.Command("node", script, in.srv.URL+tus.BasePath, file, storage, strconv.Itoa(abortAt))
			cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node upload.js: %v\n%s", err, stderr.String())
			}
			var r jsRun
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("upload.js said %q: %v", out, err)
			}
			return r
		}

		first := run(16 << 20)
		if first.Outcome != "aborted" || first.Resumed || first.URL == "" {
			t.Fatalf("first run: %+v", first)
		}
		if o := offsetOf(t, first.URL); o != 16<<20 {
			t.Fatalf("after aborting at 16 MiB the upload is at %d", o)
		}
		second := run(40 << 20)
		if second.Outcome != "aborted" || !second.Resumed || second.URL != first.URL {
			t.Fatalf("second run did not resume %s: %+v", first.URL, second)
		}
		if o := offsetOf(t, first.URL); o != 40<<20 {
			t.Fatalf("after the resumed run aborted at 40 MiB the upload is at %d", o)
		}
		third := run(0)
		if third.Outcome != "completed" || !third.Resumed || third.URL != first.URL {
			t.Fatalf("third run: %+v", third)
		}
		if _, got := nativeFile(t, in, "js", "big.bin"); !bytes.Equal(got, data) {
			t.Fatalf("native :content: %d bytes, equal %v", len(got), bytes.Equal(got, data))
		}
	})
}

// parallelRun is what testdata/parallel_resume.js reports.
type parallelRun struct {
	URL     string   `json:"url"`
	Parts   []string `json:"parts"`
	Resumed bool     `json:"resumed"`
	Outcome string   `json:"outcome"`
	Sent    int64    `json:"sent"`
}

// TestTusJSClientParallel uploads 48 MiB with the real tus-js-client 4 and
// parallelUploads: 4 (tus concatenation, as Uppy's parallel mode): the
// first run aborts once 20 MiB are acknowledged, a second run finds the
// partial uploads again, sends only what they lack, and joins them. The
// file is byte-exact and the partial uploads are gone.
func TestTusJSClientParallel(t *testing.T) {
	mods := testsvc.NodeModules(t, "tus-js-client@4")
	script, err := filepath.Abs("testdata/parallel_resume.js")
	if err != nil {
		t.Fatal(err)
	}
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		in := serve(t, s, session.Config{})
		dir := t.TempDir()
		const size = 48 << 20
		data := randomBytes(t, size)
		file := filepath.Join(dir, "big.bin")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		storage := filepath.Join(dir, "urls.json")
		run := func(abortAt int) parallelRun {
			t.Helper()
			cmd := exec.Command("node", script, in.srv.URL+tus.BasePath, file, storage, "4", strconv.Itoa(abortAt))
			cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node parallel_resume.js: %v\n%s", err, stderr.String())
			}
			var r parallelRun
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("parallel_resume.js said %q: %v", out, err)
			}
			return r
		}

		first := run(20 << 20)
		if first.Outcome != "aborted" || len(first.Parts) != 4 {
			t.Fatalf("first run: %+v", first)
		}
		var landed int64
		for _, u := range first.Parts {
			landed += offsetOf(t, u)
		}
		if landed < 20<<20 || landed >= size {
			t.Fatalf("after the abort the partial uploads hold %d bytes", landed)
		}
		second := run(0)
		if second.Outcome != "completed" || !second.Resumed || second.URL == "" {
			t.Fatalf("second run: %+v", second)
		}
		if second.Sent != size-landed {
			t.Fatalf("the resumed run sent %d bytes; the partial uploads lacked %d", second.Sent, size-landed)
		}
		if _, got := nativeFile(t, in, "js", "parallel.bin"); !bytes.Equal(got, data) {
			t.Fatalf("native :content: %d bytes, equal %v", len(got), bytes.Equal(got, data))
		}
		for _, u := range first.Parts {
			wantStatus(t, req(t, http.MethodHead, u, nil), http.StatusNotFound, "HEAD of a joined partial")
		}
	})
}
