package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/internal/testhttp"
)

// ferryd with a keys file: requests need a key, a key is limited to its
// buckets, and a key added to the file works after SIGHUP. Without a keys
// file it will not listen beyond loopback.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestAPIKeys ./cmd/ferryd/
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.yaml")
	writeKeyFile := func(keys ...auth.Key) {
		data, err := yaml.Marshal(map[string][]auth.Key{"keys": keys})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	photos, k1 := auth.NewKey("photos-writer", []string{"photos"}, auth.Write)
	writeKeyFile(k1)
	p := startFerryd(t, "--data-dir "+t.TempDir(), "FERRY_API_KEYS_FILE="+path)
	base := "http://" + p.addr
	body := `{"bucket":"photos","key":"a.jpg","size":3}`

	if r := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(body)); r.Code != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no key: %d %s", r.Code, r.Body)
	}
	if r := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(body), "Authorization", "Bearer fry_wrong"); r.Code != 401 {
		t.Fatalf("wrong key: %d %s", r.Code, r.Body)
	}
	bearer := func(secret string) []string { return []string{"Authorization", "Bearer " + secret} }
	r := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(body), bearer(photos)...)
	if r.Code != 201 {
		t.Fatalf("create with the key: %d %s", r.Code, r.Body)
	}
	other := testhttp.Do(t, "POST", base+"/v1/files", strings.NewReader(`{"bucket":"private","key":"x","size":1}`), bearer(photos)...)
	if other.Code != 403 || !strings.Contains(string(other.Body), "private") {
		t.Fatalf("a bucket outside the key's scope: %d %s", other.Code, other.Body)
	}
	if r := testhttp.Do(t, "GET", base+"/healthz", nil); r.Code != 200 {
		t.Fatalf("/healthz needs no key: %d", r.Code)
	}

	reader, k2 := auth.NewKey("auditor", []string{"*"}, auth.Read)
	writeKeyFile(k1, k2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testhttp.Do(t, "GET", base+"/v1/files", nil, bearer(reader)...).Code != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the added key never worked:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := testhttp.Do(t, "DELETE", base+"/v1/files/photos/a.jpg", nil, bearer(reader)...); r.Code != 403 {
		t.Fatalf("a read key deleted: %d %s", r.Code, r.Body)
	}
	if !strings.Contains(p.stderr.String(), "keys_reloaded") {
		t.Fatalf("the reload is not logged:\n%s", p.stderr.String())
	}

	// tus: the same keys and buckets, by method.
	tusMeta := func(bkt string) string { return "bucket " + base64.StdEncoding.EncodeToString([]byte(bkt)) }
	tusPost := func(bkt string, hdr ...string) testhttp.Answer {
		return testhttp.Do(t, "POST", base+"/v1/tus/", nil, append([]string{"Tus-Resumable", "1.0.0", "Upload-Length", "3", "Upload-Metadata", tusMeta(bkt)}, hdr...)...)
	}
	if r := tusPost("photos"); r.Code != 401 {
		t.Fatalf("tus without a key: %d %s", r.Code, r.Body)
	}
	if r := tusPost("private", bearer(photos)...); r.Code != 403 {
		t.Fatalf("tus into another bucket: %d %s", r.Code, r.Body)
	}
	r = tusPost("photos", bearer(photos)...)
	loc := r.Header.Get("Location")
	if r.Code != 201 || loc == "" {
		t.Fatalf("tus create with the key: %d %s", r.Code, r.Body)
	}
	patch := func(secret string) testhttp.Answer {
		return testhttp.Do(t, "PATCH", loc, strings.NewReader("abc"), append([]string{"Tus-Resumable", "1.0.0", "Upload-Offset", "0",
			"Content-Type", "application/offset+octet-stream"}, bearer(secret)...)...)
	}
	if r := patch(reader); r.Code != 403 {
		t.Fatalf("tus PATCH with a read key: %d %s", r.Code, r.Body)
	}
	if r := testhttp.Do(t, "HEAD", loc, nil, append([]string{"Tus-Resumable", "1.0.0"}, bearer(reader)...)...); r.Code != 200 {
		t.Fatalf("tus HEAD with a read key: %d", r.Code)
	}
	if r := patch(photos); r.Code != 204 {
		t.Fatalf("tus PATCH with the key: %d %s", r.Code, r.Body)
	}

	// Beyond loopback without keys: refused, naming the settings.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = cleanEnv("FERRYD_TEST_MAIN=1", "FERRYD_TEST_ARGS=--addr 0.0.0.0:0 --data-dir "+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FERRY_API_KEYS_FILE") || !strings.Contains(string(out), "FERRY_INSECURE_OPEN") {
		t.Fatalf("ferryd on 0.0.0.0 without keys: %v\n%s", err, out)
	}
}
