package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testserver"
	"github.com/ferryhq/ferry/internal/testsvc"
)

const MiB = 1 << 20

// ferry runs one command line against url, as a user would.
type ferry struct {
	url, state string
	key        string // FERRY_API_KEY
	hc         *http.Client
}

func (f ferry) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"FERRY_SERVER": f.url, "FERRY_STATE_DIR": f.state, "FERRY_API_KEY": f.key}
	err = run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] }, f.hc)
	return out.String(), errOut.String(), err
}

func (f ferry) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := f.run(t, args...)
	if err != nil {
		t.Fatalf("ferry %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	return names
}

func eachBackend(t *testing.T, fn func(t *testing.T, f ferry, roots string)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		roots := t.TempDir()
		fn(t, ferry{url: testserver.Serve(t, s, roots).URL, state: t.TempDir()}, roots)
	})
}

// Every command, as the usage text describes it.
func TestCommands(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, roots string) {
		dir := t.TempDir()
		src := filepath.Join(dir, "a.bin")
		data := writeRandom(t, src, 7*MiB+3)

		var up struct {
			Bucket, Key string
			Bytes       int64
		}
		if err := json.Unmarshal([]byte(f.must(t, "upload", src, "b/dir/a.bin")), &up); err != nil || up.Bytes != int64(len(data)) || up.Key != "dir/a.bin" {
			t.Fatalf("upload printed %+v, %v", up, err)
		}
		if len(stateFiles(t, f.state)) != 0 {
			t.Fatal("a finished upload left its resumption state")
		}
		if out := f.must(t, "ls"); out != "b\n" {
			t.Fatalf("ls = %q", out)
		}
		if out := f.must(t, "ls", "b/dir"); !strings.Contains(out, "7340035") || !strings.HasSuffix(out, "  dir/a.bin\n") {
			t.Fatalf("ls b/dir = %q", out)
		}
		if out := f.must(t, "ls", "b/nothing-here"); out != "" {
			t.Fatalf("ls of an empty prefix = %q", out)
		}
		if out := f.must(t, "stat", "b/dir/a.bin"); !strings.Contains(out, `"bytes": 7340035`) {
			t.Fatalf("stat = %s", out)
		}
		dest := filepath.Join(dir, "copy.bin")
		f.must(t, "download", "b/dir/a.bin", dest)
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("download: bytes differ")
		}
		if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
			t.Fatalf("the .part file stayed: %v", err)
		}
		intoDir := t.TempDir()
		f.must(t, "download", "b/dir/a.bin", intoDir)
		if got, _ := os.ReadFile(filepath.Join(intoDir, "a.bin")); !bytes.Equal(got, data) {
			t.Fatal("download into a directory: bytes differ")
		}
		if out := f.must(t, "download", "b/dir/a.bin", "-"); out != string(data) {
			t.Fatal("download to stdout: bytes differ")
		}
		f.must(t, "rm", "b/dir/a.bin")
		if _, errOut, err := f.run(t, "stat", "b/dir/a.bin"); err == nil || !strings.Contains(err.Error(), "FILE_NOT_FOUND") {
			t.Fatalf("stat after rm: %v %s", err, errOut)
		}

		// Registration of a directory under the server's allowed roots.
		loc := filepath.Join(roots, "scans")
		if err := os.MkdirAll(filepath.Join(loc, "2026"), 0o755); err != nil {
			t.Fatal(err)
		}
		scan := writeRandom(t, filepath.Join(loc, "2026", "s1.tif"), 1000)
		if out := f.must(t, "register", "scans", "file://"+loc); !strings.Contains(out, `"file_count": 1`) {
			t.Fatalf("register bucket = %s", out)
		}
		if out := f.must(t, "ls", "scans"); !strings.HasSuffix(out, "  2026/s1.tif\n") {
			t.Fatalf("ls scans = %q", out)
		}
		if out := f.must(t, "register", "scans/2026/s1.tif"); !strings.Contains(out, `"file_id": "file-`) {
			t.Fatalf("register file = %s", out)
		}
		if out := f.must(t, "download", "scans/2026/s1.tif", "-"); out != string(scan) {
			t.Fatal("download of a registered file: bytes differ")
		}
		f.must(t, "unregister", "scans")
		if _, err := os.Stat(filepath.Join(loc, "2026", "s1.tif")); err != nil {
			t.Fatalf("unregister touched the data: %v", err)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	f := ferry{url: "http://127.0.0.1:1", state: t.TempDir()}
	for _, args := range [][]string{
		{}, {"nosuch"}, {"upload", "only-one"}, {"upload", "a", "no-key"}, {"stat", "bucket-only"},
		{"upload", "--chunk-size", "lots", "a", "b/k"}, {"ls", "--help"},
	} {
		if _, _, err := f.run(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("ferry %q: err = %v, want a usage error", args, err)
		}
	}
	if _, _, err := f.run(t, "upload", filepath.Join(t.TempDir(), "missing"), "b/k"); err == nil || errors.Is(err, errUsage) {
		t.Errorf("a missing file: err = %v, want an error that is not about usage", err)
	}
}

// failing lets through the first ok appends, then fails every request, as
// a link that went down would.
type failing struct {
	ok      int64
	appends atomic.Int64
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/session:") && f.appends.Add(1) > f.ok {
		return nil, errors.New("link down")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An upload that gave up is resumed by running the same command again. One
// begun in order (--parallel 1) goes on in order, though the rerun asks
// for parts: a session that took bytes in order takes no parts.
func TestUploadResumesAcrossRuns(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		src := filepath.Join(t.TempDir(), "big.bin")
		data := writeRandom(t, src, 23*MiB)

		down := f
		down.hc = &http.Client{Transport: &failing{ok: 2}}
		_, errOut, err := down.run(t, "upload", "--parallel", "1", "--chunk-size", "5MiB", "--retries", "2", src, "b/big.bin")
		if err == nil || !strings.Contains(err.Error(), "run the same command again") {
			t.Fatalf("the first run: %v\n%s", err, errOut)
		}
		if n := len(stateFiles(t, f.state)); n != 1 {
			t.Fatalf("%d state files after a failed upload, want 1", n)
		}
		w := &watch{}
		again := f
		again.hc = &http.Client{Transport: w}
		out, errOut, err := again.run(t, "upload", "--chunk-size", "5MiB", src, "b/big.bin")
		if err != nil || !strings.Contains(errOut, "resuming session") || !strings.Contains(errOut, "at 10.0 MiB of 23.0 MiB") {
			t.Fatalf("the second run: %v\n%s", err, errOut)
		}
		if len(w.parts) != 0 || w.appends != 3 {
			t.Fatalf("the second run put parts %v and made %d appends, want 3 appends", w.parts, w.appends)
		}
		if !strings.Contains(out, `"bytes": 24117248`) || len(stateFiles(t, f.state)) != 0 {
			t.Fatalf("the second run printed %s; state files %v", out, stateFiles(t, f.state))
		}
		if got := f.must(t, "download", "b/big.bin", "-"); got != string(data) {
			t.Fatal("bytes differ after a resumed upload")
		}
	})
}

// cutting ends every response body after `after` bytes.
type cutting struct{ after int64 }

func (c cutting) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || resp.ContentLength <= c.after {
		return resp, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(resp.Body, c.after), failReader{}), resp.Body}
	return resp, nil
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("link down") }

// A download that gave up is resumed from its .part file.
func TestDownloadResumesAcrossRuns(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		dir := t.TempDir()
		data := writeRandom(t, filepath.Join(dir, "src.bin"), 9*MiB)
		f.must(t, "upload", filepath.Join(dir, "src.bin"), "b/d.bin")
		dest := filepath.Join(dir, "d.bin")

		cut := f
		cut.hc = &http.Client{Transport: cutting{after: 3 * MiB}}
		if _, errOut, err := cut.run(t, "download", "--retries", "1", "b/d.bin", dest); err == nil {
			t.Fatalf("a download over a cut link succeeded\n%s", errOut)
		}
		if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 3*MiB {
			t.Fatalf("the .part file after the cut: %v, %v", st, err)
		}
		_, errOut, err := f.run(t, "download", "b/d.bin", dest)
		if err != nil || !strings.Contains(errOut, "resuming") || !strings.Contains(errOut, "at 3.0 MiB") {
			t.Fatalf("the second run: %v\n%s", err, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("bytes differ after a resumed download")
		}
		if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) || len(stateFiles(t, f.state)) != 0 {
			t.Fatalf("leftovers: .part %v, state %v", err, stateFiles(t, f.state))
		}
	})
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": MiB, "8MiB": 8 * MiB, "8M": 8 * MiB, "512KiB": 512 << 10, "1GiB": 1 << 30, "2g": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "MiB", "8TiB", "1.5M", "x"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// ferry keys new prints a key and its keys-file entry; ferryd with that
// file takes the key from FERRY_API_KEY, and refuses the CLI without it.
func TestKeysNew(t *testing.T) {
	out := ferry{}.must(t, "keys", "new", "uploader", "--buckets", "photos, logs-*", "--access", "write")
	first, entry, _ := strings.Cut(out, "\n")
	secret, ok := strings.CutPrefix(first, "key: ")
	// The entry goes under the keys: of a file as the README writes it,
	// pasted as printed.
	keys, err := auth.Parse([]byte(keysFile + entry))
	if !ok || err != nil || len(keys) != 2 {
		t.Fatalf("output %q: %v", out, err)
	}
	if k := keys[1]; k.Name != "uploader" || k.SHA256 != auth.Hash(secret) || k.Access != auth.Write ||
		strings.Join(k.Buckets, ",") != "photos,logs-*" {
		t.Fatalf("entry %+v for key %s", k, secret)
	}
	if _, _, err := (ferry{}).run(t, "keys", "new", "x", "--access", "write"); err == nil {
		t.Fatal("a write key without buckets was made")
	}

	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte(keysFile+entry), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := auth.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.ServeKeys(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{}), ring)
	src := filepath.Join(t.TempDir(), "a.bin")
	want := writeRandom(t, src, 1000)
	f := ferry{url: srv.URL, state: t.TempDir()}
	if _, errOut, err := f.run(t, "upload", src, "photos/a.bin"); err == nil || !strings.Contains(errOut+err.Error(), "API key") {
		t.Fatalf("upload without a key: %v %s", err, errOut)
	}
	f.key = secret
	f.must(t, "upload", src, "photos/a.bin")
	dst := filepath.Join(t.TempDir(), "a.bin")
	f.must(t, "download", "photos/a.bin", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("the download differs")
	}
}

// embedded is a ferry talking to a ferryd on the embedded stores, for
// behaviour of the CLI itself that no store changes.
func embedded(t *testing.T) ferry {
	return ferry{url: testserver.Serve(t, testsvc.Open(t, "embedded", testsvc.StoreOptions{})).URL, state: t.TempDir()}
}

// A download refused before its first byte (a 404) leaves no .part and
// does not advise a resume that could not happen.
func TestDownloadNotFoundLeavesNothing(t *testing.T) {
	f := embedded(t)
	dest := filepath.Join(t.TempDir(), "x")
	_, errOut, err := f.run(t, "download", "data/nope", dest)
	if err == nil || !strings.Contains(err.Error(), "FILE_NOT_FOUND") {
		t.Fatalf("download of a missing file: %v\n%s", err, errOut)
	}
	if strings.Contains(err.Error()+errOut, "again") {
		t.Errorf("advises running again: %v\n%s", err, errOut)
	}
	if _, serr := os.Stat(dest + ".part"); !os.IsNotExist(serr) {
		t.Errorf("left %s.part: %v", dest, serr)
	}
	if n := len(stateFiles(t, f.state)); n != 0 {
		t.Errorf("left %d state files", n)
	}
}

// A file replaced on the server between runs is downloaded again from the
// start, and the CLI says so rather than claiming to resume; in ranges or
// in one stream alike.
func TestDownloadSaysWhenTheFileChanged(t *testing.T) {
	f := embedded(t)
	for _, parallel := range []string{"1", "4"} {
		t.Run("parallel="+parallel, func(t *testing.T) {
			dir := t.TempDir()
			writeRandom(t, filepath.Join(dir, "old.bin"), 9*MiB)
			f.must(t, "upload", filepath.Join(dir, "old.bin"), "b/d.bin")
			dest := filepath.Join(dir, "d.bin")
			cut := f
			cut.hc = &http.Client{Transport: cutting{after: 3 * MiB}}
			if _, errOut, err := cut.run(t, "download", "--parallel", parallel, "--retries", "1", "b/d.bin", dest); err == nil {
				t.Fatalf("a download over a cut link succeeded\n%s", errOut)
			}
			if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 3*MiB {
				t.Fatalf("the .part file after the cut: %v, %v", st, err)
			}
			data := writeRandom(t, filepath.Join(dir, "new.bin"), 7*MiB)
			f.must(t, "upload", filepath.Join(dir, "new.bin"), "b/d.bin")

			_, errOut, err := f.run(t, "download", "--parallel", parallel, "b/d.bin", dest)
			if err != nil || !strings.Contains(errOut, "b/d.bin changed on the server") || !strings.Contains(errOut, "again from the start") ||
				strings.Contains(errOut, "resuming") {
				t.Fatalf("the second run: %v\n%s", err, errOut)
			}
			if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
				t.Fatal("bytes differ from the new file")
			}
		})
	}
}

// ferry keys, ferry keys --help and ferry keys new --help each print the
// one help of keys new, once.
func TestKeysHelp(t *testing.T) {
	for _, args := range [][]string{{"keys"}, {"keys", "--help"}, {"keys", "new", "--help"}, {"keys", "new", "x", "-h"}} {
		_, errOut, err := ferry{}.run(t, args...)
		if !errors.Is(err, errUsage) || strings.Count(errOut, "Usage:") != 1 || !strings.Contains(errOut, "-append file") {
			t.Errorf("ferry %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
	}
}

// keysFile holds one admin key, written as the README writes the file.
const keysFile = `# ferry's keys
keys:
  # the operators
  - {name: ops, sha256: 9a01c3e5d1a0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a, access: admin}
`

// --append adds the entry to a keys file, or makes one, keeping the file
// loadable and its comments, and refuses a file that is not a keys file.
func TestKeysAppend(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, before string }{{"new", ""}, {"readme", keysFile}, {"empty list", "keys: []\n"}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out := ferry{}.must(t, "keys", "new", "uploader", "--buckets", "photos", "--access", "write", "--append", path)
			secret, ok := strings.CutPrefix(strings.SplitN(out, "\n", 2)[0], "key: ")
			if !ok || strings.Count(out, secret) != 1 {
				t.Fatalf("stdout %q: want the key once", out)
			}
			data, _ := os.ReadFile(path)
			keys, err := auth.Parse(data)
			if err != nil || len(keys) == 0 || keys[len(keys)-1].SHA256 != auth.Hash(secret) || strings.Contains(string(data), secret) {
				t.Fatalf("%s after --append: %v\n%s", path, err, data)
			}
			if tc.before == keysFile && (len(keys) != 2 || !strings.Contains(string(data), "# the operators")) {
				t.Errorf("the earlier key or a comment was lost:\n%s", data)
			}
			if st, _ := os.Stat(path); tc.before == "" && st.Mode().Perm() != 0o644 {
				t.Errorf("a new keys file has mode %v; ferryd may run as another user", st.Mode().Perm())
			}
		})
	}

	for _, tc := range []struct{ name, before, want string }{
		{"a config file", "addr: 0.0.0.0:8321\n", "not a keys file"},
		{"a name taken", keysFile, `already has a key named "ops"`},
	} {
		path := filepath.Join(dir, "refused.yaml")
		if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err := ferry{}.run(t, "keys", "new", "ops", "--access", "admin", "--append", path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || out != "" {
			t.Errorf("%s: err = %v, stdout %q; want it refused: %s", tc.name, err, out, tc.want)
		}
		if data, _ := os.ReadFile(path); string(data) != tc.before {
			t.Errorf("%s: the file changed:\n%s", tc.name, data)
		}
	}
}

// watch records what a run sends: the parts it puts (by number), its
// appends, its ranged GETs and the bytes their answers brought. fail,
// when set, fails the requests it picks, as a link down would.
type watch struct {
	fail func(*http.Request) bool

	mu      sync.Mutex
	parts   map[int]int
	appends int
	ranged  int
	bytes   atomic.Int64
}

func (w *watch) RoundTrip(r *http.Request) (*http.Response, error) {
	if w.fail != nil && w.fail(r) {
		return nil, errors.New("link down")
	}
	w.mu.Lock()
	if _, n, ok := strings.Cut(r.URL.Path, "/parts/"); ok && r.Method == http.MethodPut {
		if w.parts == nil {
			w.parts = map[int]int{}
		}
		k, _ := strconv.Atoi(n)
		w.parts[k]++
	} else if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/session:") {
		w.appends++
	} else if r.Header.Get("Range") != "" {
		w.ranged++
	}
	w.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Header.Get("Range") != "" {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(resp.Body, counter{&w.bytes}), resp.Body}
	}
	return resp, err
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// ferry upload --parallel then ferry download --parallel: byte-exact, in
// parts and ranges.
func TestParallelTransfers(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		dir := t.TempDir()
		src := filepath.Join(dir, "p.bin")
		data := writeRandom(t, src, 21*MiB+5)
		w := &watch{}
		f.hc = &http.Client{Transport: w}
		if out := f.must(t, "upload", "--parallel", "4", "--part-size", "5MiB", src, "b/p.bin"); !strings.Contains(out, `"bytes": 22020101`) {
			t.Fatalf("upload printed %s", out)
		}
		if len(w.parts) != 5 || w.appends > 1 {
			t.Fatalf("the upload put parts %v and made %d appends, want parts 1-5", w.parts, w.appends)
		}
		dest := filepath.Join(dir, "copy.bin")
		f.must(t, "download", "--parallel", "4", "--part-size", "1MiB", "b/p.bin", dest)
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("bytes differ after a parallel upload and download")
		}
		if w.ranged != 1+22 {
			t.Fatalf("the download made %d ranged GETs, want a probe and 22", w.ranged)
		}
		if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) || len(stateFiles(t, f.state)) != 0 {
			t.Fatalf("leftovers: .part %v, state %v", err, stateFiles(t, f.state))
		}
	})
}

// A parallel upload that gave up is resumed by running the same command
// again, which puts only the parts the session lacks.
func TestParallelUploadResumesAcrossRuns(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		src := filepath.Join(t.TempDir(), "big.bin")
		data := writeRandom(t, src, 23*MiB)
		args := []string{"upload", "--parallel", "4", "--part-size", "5MiB", src, "b/big.bin"}

		down := f
		down.hc = &http.Client{Transport: &watch{fail: func(r *http.Request) bool {
			return strings.HasSuffix(r.URL.Path, "/parts/2") || strings.HasSuffix(r.URL.Path, "/parts/4")
		}}}
		_, errOut, err := down.run(t, append([]string{"upload", "--retries", "3"}, args[1:]...)...)
		if err == nil || !strings.Contains(err.Error(), "run the same command again") {
			t.Fatalf("the first run: %v\n%s", err, errOut)
		}
		var saved state
		if names := stateFiles(t, f.state); len(names) == 1 {
			saved = loadState(names[0])
		}
		s, err := client.New(f.url, nil).Session(context.Background(), saved.Session)
		if err != nil {
			t.Fatalf("the saved session %q: %v", saved.Session, err)
		}
		landed, _ := s.Landed()
		if landed == 0 || landed > 3 {
			t.Fatalf("%d parts landed in the first run, want some of 1, 3 and 5: %+v", landed, s)
		}

		w := &watch{}
		again := f
		again.hc = &http.Client{Transport: w}
		out, errOut, err := again.run(t, args...)
		want := fmt.Sprintf("resuming session %s: %d of 5 parts already there", s.ID, landed)
		if err != nil || !strings.Contains(errOut, want) || !strings.Contains(out, `"bytes": 24117248`) {
			t.Fatalf("the second run: %v\n%s%s", err, errOut, out)
		}
		have := map[int]bool{}
		for _, r := range s.Parts {
			for n := r[0]; n <= r[1]; n++ {
				have[n] = true
			}
		}
		for n := 1; n <= 5; n++ {
			if _, put := w.parts[n]; put == have[n] {
				t.Errorf("part %d: landed before %v, put again %v", n, have[n], put)
			}
		}
		if got := f.must(t, "download", "b/big.bin", "-"); got != string(data) {
			t.Fatal("bytes differ after a resumed parallel upload")
		}
	})
}

// A parallel download that gave up is resumed by running the same command
// again, which fetches only what is past the prefix it remembered, even if
// DEST.part holds more (ranges past a gap, as a kill can leave).
func TestParallelDownloadResumesAcrossRuns(t *testing.T) {
	eachBackend(t, func(t *testing.T, f ferry, _ string) {
		dir := t.TempDir()
		data := writeRandom(t, filepath.Join(dir, "src.bin"), 10*MiB+77)
		f.must(t, "upload", filepath.Join(dir, "src.bin"), "b/d.bin")
		dest := filepath.Join(dir, "d.bin")
		args := []string{"download", "--parallel", "2", "--part-size", "1MiB", "b/d.bin", dest}

		down := f
		down.hc = &http.Client{Transport: &watch{fail: func(r *http.Request) bool {
			return strings.HasPrefix(r.Header.Get("Range"), "bytes=") && !strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") &&
				!strings.HasPrefix(r.Header.Get("Range"), "bytes=1048576-") && !strings.HasPrefix(r.Header.Get("Range"), "bytes=2097152-")
		}}}
		if _, errOut, err := down.run(t, append([]string{"download", "--retries", "2"}, args[1:]...)...); err == nil {
			t.Fatalf("a download over a cut link succeeded\n%s", errOut)
		}
		var saved state
		if names := stateFiles(t, f.state); len(names) == 1 {
			saved = loadState(names[0])
		}
		st, err := os.Stat(dest + ".part")
		if err != nil || !saved.Ranged || saved.Have <= 0 || saved.Have > 3*MiB || st.Size() != saved.Have {
			t.Fatalf("after the cut: state %+v, .part %v %v", saved, st, err)
		}
		// Ranges past a gap, as a kill -9 would leave them: not to be kept.
		junk, _ := os.OpenFile(dest+".part", os.O_WRONLY|os.O_APPEND, 0)
		_, _ = junk.Write(make([]byte, 5*MiB))
		junk.Close()

		w := &watch{}
		again := f
		again.hc = &http.Client{Transport: w}
		_, errOut, err := again.run(t, args...)
		if err != nil || !strings.Contains(errOut, "resuming "+dest+".part at "+bytesText(saved.Have)) {
			t.Fatalf("the second run: %v\n%s", err, errOut)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
			t.Fatal("bytes differ after a resumed parallel download")
		}
		if want := int64(len(data)) - saved.Have + 1; w.bytes.Load() != want {
			t.Fatalf("the second run read %d bytes, want the %d missing and the probe's one", w.bytes.Load(), want-1)
		}
	})
}
