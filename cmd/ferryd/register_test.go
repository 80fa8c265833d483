package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
)

func register(t *testing.T, p *proc, bkt, location string) testhttp.Answer {
	t.Helper()
	body := fmt.Sprintf(`{"location": %q}`, location)
	return testhttp.Do(t, "PUT", "http://"+p.addr+"/v1/files/"+bkt, strings.NewReader(body), "Content-Type", "application/json")
}

// wantCode fails unless r has the status and, when given, the error code.
func wantCode(t *testing.T, what string, r testhttp.Answer, status int, code string) map[string]any {
	t.Helper()
	if r.Code != status {
		t.Fatalf("%s: %d %s, want %d", what, r.Code, r.Body, status)
	}
	m := r.JSON(t)
	if code != "" && m["code"] != code {
		t.Fatalf("%s: code %v, want %s (%s)", what, m["code"], code, r.Body)
	}
	return m
}

// listAll pages through a bucket with the given page size and returns the keys.
func listAll(t *testing.T, p *proc, bkt, prefix string, limit int) []string {
	t.Helper()
	var keys []string
	after := ""
	for {
		r := testhttp.Do(t, "GET", fmt.Sprintf("http://%s/v1/files/%s?limit=%d&prefix=%s&after=%s", p.addr, bkt, limit, prefix, after), nil)
		m := wantCode(t, "list "+bkt, r, 200, "")
		data := m["data"].([]any)
		if len(data) > limit {
			t.Fatalf("a page of %d with limit %d", len(data), limit)
		}
		for _, d := range data {
			keys = append(keys, d.(map[string]any)["key"].(string))
		}
		if m["has_more"] != true {
			return keys
		}
		after = m["next"].(string)
	}
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A directory filled beforehand is registered, listed, read byte-exact,
// takes uploads and deletes, and is unregistered with its data intact;
// traversal and symlink escapes are refused.
func TestE2ERegisterDirectory(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		roots, outside := t.TempDir(), t.TempDir()
		data := filepath.Join(roots, "data")
		files := map[string][]byte{
			"a.txt":      []byte("alpha\n"),
			"sub/b.bin":  randomData(6<<20 + 3),
			"sub/c.json": []byte(`{"k": 1}`),
		}
		writeFiles(t, data, files)
		writeFiles(t, outside, map[string][]byte{"secret": []byte("secret")})
		writeFiles(t, roots, map[string][]byte{"other/x": []byte("x")})
		for link, target := range map[string]string{
			filepath.Join(data, "escape"):   outside,
			filepath.Join(data, "link.txt"): filepath.Join(outside, "secret"),
			filepath.Join(roots, "away"):    outside,
		} {
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
		}
		// Ferry's own data directory lies under the root too.
		p := startFerryd(t, be.args+" --data-dir "+filepath.Join(roots, "ferry"), append(be.env, "FERRY_ALLOWED_ROOTS="+roots)...)
		base := "http://" + p.addr + "/v1/files/local"

		// Refusals first: none of them may register anything.
		for _, c := range []struct {
			location string
			status   int
			code     string
		}{
			{"file://" + data + "/../../", 403, "LOCATION_NOT_ALLOWED"},
			{"file://" + data + "/%2e%2e/%2e%2e/etc", 403, "LOCATION_NOT_ALLOWED"},
			{"file:///etc", 403, "LOCATION_NOT_ALLOWED"},
			{"file://" + filepath.Join(roots, "away"), 403, "LOCATION_NOT_ALLOWED"},
			{"file://" + filepath.Join(data, "escape"), 403, "LOCATION_NOT_ALLOWED"},
			{"file://" + roots, 403, "LOCATION_NOT_ALLOWED"}, // holds Ferry's own data
			{"file://" + filepath.Join(roots, "missing"), 404, "LOCATION_NOT_FOUND"},
			{"file://" + filepath.Join(data, "a.txt"), 400, "INVALID_LOCATION"},
			{"file://data/dir", 400, "INVALID_LOCATION"},
			{"http://169.254.169.254/latest", 400, "INVALID_LOCATION"},
			{"s3://127.0.0.1:9000/x", 400, "INVALID_LOCATION"},
			{"/srv/data", 400, "INVALID_LOCATION"},
		} {
			wantCode(t, c.location, register(t, p, "local", c.location), c.status, c.code)
		}
		wantCode(t, "no location", testhttp.Do(t, "PUT", base, strings.NewReader(`{}`)), 400, "INVALID_REQUEST")
		wantCode(t, "unknown field", testhttp.Do(t, "PUT", base, strings.NewReader(`{"location":"file:///x","path":"y"}`)), 400, "")
		wantCode(t, "bad bucket", register(t, p, "bad.name", "file://"+data), 400, "INVALID_BUCKET")
		if got := listBucketNames(t, p); len(got) != 0 {
			t.Fatalf("refused registrations left buckets behind: %v", got)
		}

		reg := wantCode(t, "register", register(t, p, "local", "file://"+data), 201, "")
		if reg["location"] != "file://"+data || reg["file_count"] != float64(3) || reg["status"] != "registered" ||
			reg["bytes"] != float64(len(files["a.txt"])+len(files["sub/b.bin"])+len(files["sub/c.json"])) {
			t.Fatalf("registration answered %v", reg)
		}
		again := wantCode(t, "register again", register(t, p, "local", "file://"+data+"/"), 200, "")
		if again["created_at"] != reg["created_at"] {
			t.Fatalf("a repeat registration changed created_at: %v vs %v", again, reg)
		}
		wantCode(t, "another location", register(t, p, "local", "file://"+filepath.Join(roots, "other")), 409, "BUCKET_CONFLICT")

		// Listing is live, paged, and skips the symlinks.
		want := []string{"a.txt", "sub/b.bin", "sub/c.json"}
		for _, limit := range []int{1, 2, 100} {
			if got := listAll(t, p, "local", "", limit); !slices.Equal(got, want) {
				t.Fatalf("limit %d listed %v, want %v", limit, got, want)
			}
		}
		if got := listAll(t, p, "local", "sub/", 10); !slices.Equal(got, want[1:]) {
			t.Fatalf("prefix sub/ listed %v", got)
		}
		for name, content := range files {
			if got := download(t, base+"/"+name+":content"); !bytes.Equal(got, content) {
				t.Fatalf("%s: downloaded %d bytes, not the %d on disk", name, len(got), len(content))
			}
		}
		r := testhttp.Do(t, "GET", base+"/sub/b.bin:content", nil, "Range", "bytes=5242880-5242889")
		if r.Code != 206 || !bytes.Equal(r.Body, files["sub/b.bin"][5<<20:5<<20+10]) {
			t.Fatalf("range: %d, %d bytes", r.Code, len(r.Body))
		}
		for _, key := range []string{"escape/secret", "link.txt"} {
			wantCode(t, key, testhttp.Do(t, "GET", base+"/"+key, nil), 404, "FILE_NOT_FOUND")
			wantCode(t, key, testhttp.Do(t, "GET", base+"/"+key+":content", nil), 404, "FILE_NOT_FOUND")
		}

		// Registering a file records what storage says about it.
		f := wantCode(t, "register file", testhttp.Do(t, "PUT", base+"/sub/c.json", nil), 200, "")
		if f["mime_type"] != "application/json" || f["bytes"] != float64(8) || !strings.HasPrefix(f["file_id"].(string), "file-") ||
			f["status"] != "registered" || f["location"] != "file://"+data {
			t.Fatalf("file registration answered %v", f)
		}
		wantCode(t, "register missing file", testhttp.Do(t, "PUT", base+"/nope.txt", nil), 404, "FILE_NOT_FOUND")
		wantCode(t, "register file in unregistered bucket", testhttp.Do(t, "PUT", "http://"+p.addr+"/v1/files/plain/x", nil), 404, "BUCKET_NOT_REGISTERED")

		// Uploads land in the directory itself.
		up := randomData(7<<20 + 5)
		uploadHTTP(t, p, "local", "new/up.bin", up, 3<<20, 5<<20)
		if disk, err := os.ReadFile(filepath.Join(data, "new", "up.bin")); err != nil || !bytes.Equal(disk, up) {
			t.Fatalf("the upload is not byte-exact on disk: %d bytes, %v", len(disk), err)
		}
		if got := download(t, base+"/new/up.bin:content"); !bytes.Equal(got, up) {
			t.Fatal("the upload does not read back byte-exact")
		}
		if got := listAll(t, p, "local", "", 100); !slices.Contains(got, "new/up.bin") || slices.Contains(got, ".ferry-staging") {
			t.Fatalf("after the upload the listing is %v", got)
		}

		// Delete works as on uploaded files: the bytes go.
		if r := testhttp.Do(t, "DELETE", base+"/a.txt", nil); r.Code != 204 {
			t.Fatalf("delete: %d %s", r.Code, r.Body)
		}
		if _, err := os.Stat(filepath.Join(data, "a.txt")); !os.IsNotExist(err) {
			t.Fatalf("a deleted file is still on disk: %v", err)
		}

		if got := listBucketNames(t, p); !slices.Contains(got, "local=file://"+data) {
			t.Fatalf("bucket list %v lacks the registered bucket and its location", got)
		}

		// Unregistering keeps every byte.
		un := wantCode(t, "unregister", testhttp.Do(t, "DELETE", base, nil), 200, "")
		if un["status"] != "unregistered" {
			t.Fatalf("unregister answered %v", un)
		}
		for name, content := range map[string][]byte{"sub/b.bin": files["sub/b.bin"], "sub/c.json": files["sub/c.json"], "new/up.bin": up} {
			if disk, err := os.ReadFile(filepath.Join(data, name)); err != nil || !bytes.Equal(disk, content) {
				t.Fatalf("%s changed after unregistering: %v", name, err)
			}
		}
		wantCode(t, "list after unregister", testhttp.Do(t, "GET", base, nil), 404, "BUCKET_NOT_FOUND")
		wantCode(t, "get after unregister", testhttp.Do(t, "GET", base+"/sub/c.json", nil), 404, "FILE_NOT_FOUND")
		wantCode(t, "unregister twice", testhttp.Do(t, "DELETE", base, nil), 404, "BUCKET_NOT_REGISTERED")
		if got := listBucketNames(t, p); len(got) != 0 {
			t.Fatalf("buckets after unregistering: %v", got)
		}
		// And the directory can be registered again, as it is now.
		reg = wantCode(t, "register again", register(t, p, "local", "file://"+data), 201, "")
		if reg["file_count"] != float64(3) {
			t.Fatalf("re-registration counted %v", reg["file_count"])
		}
	})
}

// listBucketNames returns "name" or "name=location" for each bucket.
func listBucketNames(t *testing.T, p *proc) []string {
	t.Helper()
	m := wantCode(t, "list buckets", testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files", nil), 200, "")
	var out []string
	for _, d := range m["data"].([]any) {
		b := d.(map[string]any)
		if loc, ok := b["location"]; ok {
			out = append(out, b["name"].(string)+"="+loc.(string))
		} else {
			out = append(out, b["name"].(string))
		}
	}
	return out
}

// Without allowed roots, file:// registration is off with a clear error.
func TestE2ERegisterDirectoryDisabledByDefault(t *testing.T) {
	p := startFerryd(t, "--data-dir "+t.TempDir())
	m := wantCode(t, "file:// without roots", register(t, p, "local", "file://"+t.TempDir()), 400, "INVALID_LOCATION")
	if !strings.Contains(m["detail"].(string), "FERRY_ALLOWED_ROOTS") {
		t.Fatalf("the error does not say how to enable it: %v", m["detail"])
	}
	m = wantCode(t, "s3:// without S3", register(t, p, "lake", "s3://some-bucket/x"), 400, "INVALID_LOCATION")
	if !strings.Contains(m["detail"].(string), "FERRY_S3_BUCKET") {
		t.Fatalf("the error does not say how to enable it: %v", m["detail"])
	}
}

// A prefix filled beforehand with the plain SDK is registered, listed,
// read byte-exact, takes multipart uploads and deletes, and is unregistered
// with its objects intact.
func TestE2ERegisterS3Prefix(t *testing.T) {
	t.Parallel()
	be := redisS3Env(t)
	c, lake := testsvc.S3(t)
	ctx := context.Background()
	objects := map[string][]byte{
		"datasets/2024/a.csv":       []byte("x,y\n1,2\n"),
		"datasets/2024/big/b.bin":   randomData(12<<20 + 1),
		"datasets/2024/c.txt":       []byte("gamma"),
		"datasets/2024/with space":  []byte("not addressable"),
		"datasets/2023/outside.txt": []byte("other prefix"),
	}
	for key, data := range objects {
		in := &s3.PutObjectInput{Bucket: &lake, Key: aws.String(key), Body: bytes.NewReader(data)}
		if strings.HasSuffix(key, ".csv") {
			in.ContentType = aws.String("text/csv")
		}
		if _, err := c.PutObject(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	missing := "no-such-bucket-" + strings.ToLower(testsvc.Unique("x"))
	_, other := testsvc.S3(t)
	be.env = append(be.env, "FERRY_ALLOWED_S3_BUCKETS="+lake+","+missing+","+be.bucket)
	p := be.start(t)
	base := "http://" + p.addr + "/v1/files/lake"

	wantCode(t, "unlisted bucket", register(t, p, "lake", "s3://"+other+"/datasets"), 403, "LOCATION_NOT_ALLOWED")
	wantCode(t, "missing bucket", register(t, p, "lake", "s3://"+missing), 404, "LOCATION_NOT_FOUND")
	wantCode(t, "own storage", register(t, p, "lake", "s3://"+be.bucket+"/anything"), 403, "LOCATION_NOT_ALLOWED")
	wantCode(t, "bad bucket name", register(t, p, "lake", "s3://Not_A_Bucket"), 400, "INVALID_LOCATION")
	wantCode(t, "prefix traversal", register(t, p, "lake", "s3://"+lake+"/datasets/../2023"), 400, "INVALID_LOCATION")

	reg := wantCode(t, "register", register(t, p, "lake", "s3://"+lake+"/datasets/2024/"), 201, "")
	if reg["location"] != "s3://"+lake+"/datasets/2024" || reg["file_count"] != float64(3) {
		t.Fatalf("registration answered %v", reg)
	}
	wantCode(t, "register again", register(t, p, "lake", "s3://"+lake+"/datasets/2024"), 200, "")

	want := []string{"a.csv", "big/b.bin", "c.txt"}
	for _, limit := range []int{1, 2, 100} {
		if got := listAll(t, p, "lake", "", limit); !slices.Equal(got, want) {
			t.Fatalf("limit %d listed %v, want %v", limit, got, want)
		}
	}
	for _, key := range want {
		if got := download(t, base+"/"+key+":content"); !bytes.Equal(got, objects["datasets/2024/"+key]) {
			t.Fatalf("%s: downloaded %d bytes, not the object's %d", key, len(got), len(objects["datasets/2024/"+key]))
		}
	}
	r := testhttp.Do(t, "GET", base+"/big/b.bin:content", nil, "Range", "bytes=-7")
	if r.Code != 206 || !bytes.Equal(r.Body, objects["datasets/2024/big/b.bin"][12<<20-6:]) {
		t.Fatalf("suffix range: %d, %d bytes", r.Code, len(r.Body))
	}
	f := wantCode(t, "register file", testhttp.Do(t, "PUT", base+"/a.csv", nil), 200, "")
	if f["mime_type"] != "text/csv" || f["bytes"] != float64(8) || f["etag"] == "" {
		t.Fatalf("file registration answered %v", f)
	}
	info := wantCode(t, "file info", testhttp.Do(t, "GET", base+"/a.csv", nil), 200, "")
	if info["file_id"] != f["file_id"] || info["mime_type"] != "text/csv" {
		t.Fatalf("file info %v does not carry the registration %v", info, f)
	}

	// A multipart upload goes to the lake bucket under the prefix.
	up := randomData(11<<20 + 9)
	uploadHTTP(t, p, "lake", "new/up.bin", up, 5<<20)
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &lake, Key: aws.String("datasets/2024/new/up.bin")})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, _ = got.ReadFrom(out.Body)
	out.Body.Close()
	if !bytes.Equal(got.Bytes(), up) {
		t.Fatalf("the upload in S3 is %d bytes, not the %d sent", got.Len(), len(up))
	}

	if r := testhttp.Do(t, "DELETE", base+"/c.txt", nil); r.Code != 204 {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &lake, Key: aws.String("datasets/2024/c.txt")}); err == nil {
		t.Fatal("a deleted object is still in S3")
	}

	wantCode(t, "unregister", testhttp.Do(t, "DELETE", base, nil), 200, "")
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &lake})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range list.Contents {
		left = append(left, aws.ToString(o.Key))
	}
	slices.Sort(left)
	wantLeft := []string{"datasets/2023/outside.txt", "datasets/2024/a.csv", "datasets/2024/big/b.bin", "datasets/2024/new/up.bin", "datasets/2024/with space"}
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("after unregistering S3 holds %v, want %v", left, wantLeft)
	}
	wantCode(t, "list after unregister", testhttp.Do(t, "GET", base, nil), 404, "BUCKET_NOT_FOUND")
}

// Registrations cannot overlap, so the exploit (an outer
// registration listing, reading, overwriting and deleting an inner one's
// sub/.ferry-staging/...) cannot be set up; and when a registration around
// a staging directory is made after the inner one went, every route refuses
// the staging keys with 400 INVALID_KEY while the inner upload completes
// byte-exact.
func TestE2ENestedRegistrationsCannotReachStaging(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		roots := t.TempDir()
		data := filepath.Join(roots, "data")
		sub := filepath.Join(data, "sub")
		writeFiles(t, sub, map[string][]byte{"old.txt": []byte("old")})
		p := startFerryd(t, be.args, append(be.env, "FERRY_ALLOWED_ROOTS="+roots)...)
		files := "http://" + p.addr + "/v1/files/"

		wantCode(t, "register inner", register(t, p, "inner", "file://"+sub), 201, "")
		m := wantCode(t, "register outer", register(t, p, "outer", "file://"+data), 409, "LOCATION_OVERLAP")
		if d := m["detail"].(string); !strings.Contains(d, `"inner"`) || !strings.Contains(d, "file://"+sub) {
			t.Fatalf("the overlap error does not name the other registration: %s", d)
		}
		wantCode(t, "register same", register(t, p, "twin", "file://"+sub), 409, "LOCATION_OVERLAP")
		wantCode(t, "register inside staging", register(t, p, "stg", "file://"+filepath.Join(sub, ".ferry-staging")), 400, "INVALID_LOCATION")
		wantCode(t, "register inner again", register(t, p, "inner", "file://"+sub), 200, "")

		// An upload into inner, half-way.
		content := randomData(3<<20 + 11)
		id := createSession(t, p, "inner", "up.bin", len(content))["id"].(string)
		if r := sendChunk(t, p, id, 0, content[:1<<20]); r.Code != 200 {
			t.Fatalf("first chunk: %d %s", r.Code, r.Body)
		}
		staged := filepath.Join(sub, ".ferry-staging", "sessions", id)
		if fi, err := os.Stat(staged); err != nil || fi.Size() != 1<<20 {
			t.Fatalf("the staging file is not where the test looks: %v", err)
		}

		// inner goes (its session goes on), and outer comes around it.
		wantCode(t, "unregister inner", testhttp.Do(t, "DELETE", files+"inner", nil), 200, "")
		wantCode(t, "register outer", register(t, p, "outer", "file://"+data), 201, "")
		for _, key := range []string{"sub/.ferry-staging/sessions/" + id, "sub/.FERRY-STAGING/sessions/" + id, "sub/.ferry-staging"} {
			u := files + "outer/" + key
			wantCode(t, "info "+key, testhttp.Do(t, "GET", u, nil), 400, "INVALID_KEY")
			wantCode(t, "content "+key, testhttp.Do(t, "GET", u+":content", nil), 400, "INVALID_KEY")
			wantCode(t, "register file "+key, testhttp.Do(t, "PUT", u, nil), 400, "INVALID_KEY")
			wantCode(t, "delete "+key, testhttp.Do(t, "DELETE", u, nil), 400, "INVALID_KEY")
			create := fmt.Sprintf(`{"bucket":"outer","key":%q,"size":4}`, key)
			wantCode(t, "upload "+key, testhttp.Do(t, "POST", files[:len(files)-1], strings.NewReader(create)), 400, "INVALID_KEY")
		}
		for _, prefix := range []string{"", "sub/", "sub/.ferry-staging/"} {
			for _, key := range listAll(t, p, "outer", prefix, 100) {
				if strings.Contains(strings.ToLower(key), ".ferry-staging") {
					t.Fatalf("outer lists %q", key)
				}
			}
		}

		// The inner upload was untouched and completes byte-exact.
		off := 1 << 20
		for off < len(content) {
			n := min(1<<20, len(content)-off)
			if r := sendChunk(t, p, id, off, content[off:off+n]); r.Code != 200 {
				t.Fatalf("chunk at %d: %d %s", off, r.Code, r.Body)
			}
			off += n
		}
		if disk, err := os.ReadFile(filepath.Join(sub, "up.bin")); err != nil || !bytes.Equal(disk, content) {
			t.Fatalf("the inner upload is not byte-exact on disk: %d bytes, %v", len(disk), err)
		}
		if got := download(t, files+"outer/sub/up.bin:content"); !bytes.Equal(got, content) {
			t.Fatal("the upload does not read back byte-exact through outer")
		}
		// Once recorded, the commit leaves neither staging file nor receipt.
		if left, err := os.ReadDir(filepath.Dir(staged)); err != nil || len(left) != 0 {
			t.Fatalf("after the upload the staging directory holds %v (%v)", left, err)
		}
	})
}

// A staging file deleted mid-upload is never recreated with a hole in
// front: the next chunk is refused and no object with NULs appears.
func TestE2EDeletedStagingFileIsNotRecreated(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		roots := t.TempDir()
		data := filepath.Join(roots, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		p := startFerryd(t, be.args, append(be.env, "FERRY_ALLOWED_ROOTS="+roots)...)
		wantCode(t, "register", register(t, p, "local", "file://"+data), 201, "")
		content := randomData(2<<20 + 5)
		id := createSession(t, p, "local", "up.bin", len(content))["id"].(string)
		if r := sendChunk(t, p, id, 0, content[:1<<20]); r.Code != 200 {
			t.Fatalf("first chunk: %d %s", r.Code, r.Body)
		}
		staged := filepath.Join(data, ".ferry-staging", "sessions", id)
		if err := os.Remove(staged); err != nil {
			t.Fatal(err)
		}
		r := sendChunk(t, p, id, 1<<20, content[1<<20:])
		if r.Code != 410 || r.JSON(t)["code"] != "SESSION_STORAGE_LOST" {
			t.Fatalf("a chunk after the staging file was deleted: %d %s, want 410 SESSION_STORAGE_LOST", r.Code, r.Body)
		}
		if _, err := os.Stat(staged); !os.IsNotExist(err) {
			t.Fatalf("the refused chunk recreated the staging file: %v", err)
		}
		if _, err := os.Stat(filepath.Join(data, "up.bin")); !os.IsNotExist(err) {
			t.Fatalf("an object was published from lost bytes: %v", err)
		}
		wantCode(t, "file info", testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/local/up.bin", nil), 404, "FILE_NOT_FOUND")
	})
}

// Keys with a staging segment or a segment too long for any filesystem get
// 400 INVALID_KEY on every route, in Ferry's own buckets as in registered
// ones, instead of a 500 or a misleading 409 when the upload completes.
func TestE2EKeySegmentsRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		files := "http://" + p.addr + "/v1/files"
		long := strings.Repeat("n", 256)
		for _, key := range []string{".ferry-staging/x", "a/.Ferry-Staging/b", long, "dir/" + long + "/x"} {
			create := fmt.Sprintf(`{"bucket":"own","key":%q,"size":4}`, key)
			m := wantCode(t, "upload "+key, testhttp.Do(t, "POST", files, strings.NewReader(create)), 400, "INVALID_KEY")
			if d := m["detail"].(string); !strings.Contains(d, "255 bytes") && !strings.Contains(d, "reserved") {
				t.Fatalf("the error does not say what to fix: %s", d)
			}
			u := files + "/own/" + key
			wantCode(t, "info "+key, testhttp.Do(t, "GET", u, nil), 400, "INVALID_KEY")
			wantCode(t, "content "+key, testhttp.Do(t, "GET", u+":content", nil), 400, "INVALID_KEY")
			wantCode(t, "delete "+key, testhttp.Do(t, "DELETE", u, nil), 400, "INVALID_KEY")
			wantCode(t, "register file "+key, testhttp.Do(t, "PUT", u, nil), 400, "INVALID_KEY")
		}
		// 255 bytes is a name every filesystem takes.
		ok := strings.Repeat("n", 255)
		uploadHTTP(t, p, "own", "dir/"+ok, []byte("fits"), 4)
		if got := download(t, files+"/own/dir/"+ok+":content"); string(got) != "fits" {
			t.Fatalf("downloaded %q", got)
		}
	})
}

// Llama Stack's register_bucket form: the location, percent-encoded, as the
// {bucket} of PUT /v1/files/{bucket}, with no body; the bucket name is
// derived from it and answered beside the URI. With a key after it, that
// file of the location is registered.
func TestE2ERegisterByLocationURI(t *testing.T) {
	t.Parallel()
	roots := t.TempDir()
	data := filepath.Join(roots, "my data")
	writeFiles(t, data, map[string][]byte{"sub/a.txt": []byte("alpha\n")})
	p := startFerryd(t, "--data-dir "+t.TempDir(), "FERRY_ALLOWED_ROOTS="+roots)
	uri := "file://" + data
	put := func(path string) testhttp.Answer {
		return testhttp.Do(t, "PUT", "http://"+p.addr+"/v1/files/"+path, nil)
	}
	r := put(url.PathEscape(uri))
	if r.Code != 201 {
		t.Fatalf("register %s: %d %s", uri, r.Code, r.Body)
	}
	m := r.JSON(t)
	name := m["name"].(string)
	canonical := "file://" + strings.ReplaceAll(data, " ", "%20")
	if m["bucket"] != canonical || m["location"] != canonical || m["status"] != "registered" || m["created_at"] == nil ||
		!strings.HasPrefix(name, "file-") || !strings.HasSuffix(name, "-my-data") {
		t.Fatalf("answer %v", m)
	}
	if r := put(url.PathEscape(uri)); r.Code != 200 || r.JSON(t)["name"] != name {
		t.Fatalf("again: %d %s", r.Code, r.Body)
	}
	if got := download(t, "http://"+p.addr+"/v1/files/"+name+"/sub/a.txt:content"); string(got) != "alpha\n" {
		t.Fatalf("through the derived name: %q", got)
	}
	if r := put(url.PathEscape(uri) + "/sub/a.txt"); r.Code != 200 || r.JSON(t)["bucket"] != canonical || r.JSON(t)["key"] != "sub/a.txt" {
		t.Fatalf("register the file: %d %s", r.Code, r.Body)
	}
	wantCode(t, "outside the roots", put(url.PathEscape("file:///etc")), 403, "LOCATION_NOT_ALLOWED")
	wantCode(t, "a body too", testhttp.Do(t, "PUT", "http://"+p.addr+"/v1/files/"+url.PathEscape(uri), strings.NewReader(`{"location":"x"}`)), 400, "INVALID_REQUEST")
}
