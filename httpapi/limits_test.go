package httpapi

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/ratelimit"
)

func TestLimitClass(t *testing.T) {
	for _, c := range []struct{ method, route, want string }{
		{"POST", "/v1/files", classUploads},
		{"POST", "/v1/openai/v1/files", classUploads},
		{"POST", "/v1/openAi/v1/uploads", classUploads},
		{"GET", "/v1/files", classRetrievals},
		{"GET", "/v1/files/{bucket}", classRetrievals},
		{"GET", "/v1/files/{bucket}/{key:.+}", classRetrievals},
		{"HEAD", "/v1/files/{bucket}/{key:.+}" + contentSuffix, classRetrievals},
		{"GET", "/v1/openai/v1/files/{id}/content", classRetrievals},
		{"GET", "/v1/openai/v1/vector_stores/{vector_store_id}/files", classRetrievals},
		{"POST", "/v1/files/{bucket}/{key:.+}" + presignSuffix, classRetrievals},
		{"DELETE", "/v1/files/{bucket}/{key:.+}", classDeletions},
		{"DELETE", "/v1/files/{bucket}", classDeletions},
		{"DELETE", "/v1/openai/v1/files/{id}", classDeletions},
		// The rest of an admitted transfer.
		{"POST", "/v1/files/session:{id}", ""},
		{"PUT", "/v1/files/session:{id}", ""},
		{"GET", "/v1/files/session:{id}", ""},
		{"HEAD", "/v1/files/session:{id}", ""},
		{"DELETE", "/v1/files/session:{id}", ""},
		{"POST", "/v1/openai/v1/uploads/{id}/parts", ""},
		{"POST", "/v1/openai/v1/uploads/{id}/complete", ""},
		{"POST", "/v1/openai/v1/uploads/{id}/cancel", ""},
		// tus 1.0, whatever its routes' templates: only creation counts.
		{"POST", "/v1/tus/", classUploads},
		{"HEAD", "/v1/tus/{id}", ""},
		{"PATCH", "/v1/tus/{id}", ""},
		{"DELETE", "/v1/tus/{id}", ""},
		// Neither uploads nor retrievals.
		{"PUT", "/v1/files/{bucket}/{key:.+}", ""},
		{"POST", "/v1/openai/v1/vector_stores", ""},
		{"GET", "/v1/openai/v1/", ""},
		// Operations.
		{"GET", "/healthz", ""},
		{"GET", "/readyz", ""},
		{"GET", "/metrics", ""},
		{"GET", "/openapi.json", ""},
		{"GET", unmatchedRoute, ""},
	} {
		if got := limitClass(c.route, c.method); got != c.want {
			t.Errorf("%s %s: class %q, want %q", c.method, c.route, got, c.want)
		}
	}
}

// eachLimitedStore runs fn on each storage mode with the limiter ferryd
// pairs with it: in memory on the embedded default, on Redis beside
// Redis + S3.
func eachLimitedStore(t *testing.T, limits RateLimits, fn func(t *testing.T, base string)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		l := limits
		if s.Name == "embedded" {
			l.Limiter = ratelimit.NewMemory()
		} else {
			c, prefix := testsvc.Redis(t)
			l.Limiter = ratelimit.NewRedis(c, prefix)
		}
		fn(t, serveLimited(t, s.Meta, s.Blobs, l))
	})
}

// serveLimited serves the whole API over store and blobs with limits.
func serveLimited(t *testing.T, store metastore.Store, blobs bucket.Backend, limits RateLimits) string {
	t.Helper()
	d := apiDeps(t, store, blobs)
	d.Limits = limits
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	return srv.URL
}

// defaultLimits are those of Llama Stack's Files API docs.
var defaultLimits = RateLimits{Uploads: 100, Retrievals: 1000, Deletions: 100}

func createOpenAIUpload(t *testing.T, base, prefix string, size int) testhttp.Answer {
	t.Helper()
	return testhttp.Do(t, "POST", base+prefix+"/uploads",
		strings.NewReader(fmt.Sprintf(`{"filename":"u.bin","purpose":"assistants","bytes":%d,"mime_type":"application/octet-stream"}`, size)),
		"Content-Type", "application/json")
}

func multipartBody(t *testing.T, field, filename string, data []byte, fields ...string) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := mw.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// wantLimited checks a 429: Retry-After and the RateLimit-* headers agree,
// and the body is the route's envelope.
func wantLimited(t *testing.T, what string, a testhttp.Answer, limit int, openAI bool) {
	t.Helper()
	if a.Code != http.StatusTooManyRequests {
		t.Fatalf("%s: %d %s, want 429", what, a.Code, a.Body)
	}
	retry, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 60 {
		t.Fatalf("%s: Retry-After %q, want 1 to 60 seconds", what, a.Header.Get("Retry-After"))
	}
	if a.Header.Get("RateLimit-Limit") != strconv.Itoa(limit) || a.Header.Get("RateLimit-Remaining") != "0" ||
		a.Header.Get("RateLimit-Reset") != a.Header.Get("Retry-After") {
		t.Fatalf("%s: RateLimit-Limit %q, -Remaining %q, -Reset %q; want %d, 0 and the Retry-After %d", what,
			a.Header.Get("RateLimit-Limit"), a.Header.Get("RateLimit-Remaining"), a.Header.Get("RateLimit-Reset"), limit, retry)
	}
	body := a.JSON(t)
	if openAI {
		e, _ := body["error"].(map[string]any)
		if e["code"] != "rate_limit_exceeded" || e["type"] != "requests" || e["message"] == "" {
			t.Fatalf("%s: OpenAI envelope %s, want code rate_limit_exceeded, type requests", what, a.Body)
		}
		return
	}
	if body["status"] != 429.0 || body["code"] != "RATE_LIMITED" || body["title"] != "Too Many Requests" || body["detail"] == "" {
		t.Fatalf("%s: native envelope %s, want status 429, code RATE_LIMITED", what, a.Body)
	}
}

// The default of Llama Stack's Files API docs: 100 uploads per minute per
// subject. The 101st session create is refused with 429 and its headers,
// natively and on the OpenAI routes (file creates and upload creates share
// the budget), while other classes are still served.
func TestUploadLimitDefault(t *testing.T) {
	eachLimitedStore(t, defaultLimits, func(t *testing.T, base string) {
		for i := range 100 {
			a, _ := newSession(t, base, "limits", fmt.Sprintf("k%d", i), 10)
			if a.Code != 201 {
				t.Fatalf("create %d: %d %s", i+1, a.Code, a.Body)
			}
			if a.Header.Get("RateLimit-Limit") != "100" || a.Header.Get("RateLimit-Remaining") != strconv.Itoa(99-i) {
				t.Fatalf("create %d: RateLimit-Limit %q, -Remaining %q", i+1, a.Header.Get("RateLimit-Limit"), a.Header.Get("RateLimit-Remaining"))
			}
		}
		a, _ := newSession(t, base, "limits", "k100", 10)
		wantLimited(t, "101st native create", a, 100, false)

		body, ctype := multipartBody(t, "file", "f.txt", []byte("hello"), "purpose", "assistants")
		wantLimited(t, "OpenAI file create", testhttp.Do(t, "POST", base+"/v1/openai/v1/files", body, "Content-Type", ctype), 100, true)
		wantLimited(t, "OpenAI upload create", createOpenAIUpload(t, base, "/v1/openAi/v1", 10), 100, true)

		if a := testhttp.Do(t, "GET", base+"/v1/files", nil); a.Code != 200 || a.Header.Get("RateLimit-Limit") != "1000" {
			t.Fatalf("a retrieval while uploads are limited: %d, RateLimit-Limit %q", a.Code, a.Header.Get("RateLimit-Limit"))
		}
		metrics := testhttp.Do(t, "GET", base+"/metrics", nil)
		if !bytes.Contains(metrics.Body, []byte(`ferry_rate_limited_total{class="uploads"} 3`)) {
			t.Fatalf("metrics lack ferry_rate_limited_total{class=\"uploads\"} 3:\n%s", metrics.Body)
		}
	})
}

// The OpenAI routes count toward the same limit; the 101st is refused in
// the OpenAI envelope.
func TestUploadLimitOpenAI(t *testing.T) {
	eachLimitedStore(t, RateLimits{Uploads: 3}, func(t *testing.T, base string) {
		body, ctype := multipartBody(t, "file", "f.txt", []byte("hello"), "purpose", "assistants")
		if a := testhttp.Do(t, "POST", base+"/v1/openai/v1/files", body, "Content-Type", ctype); a.Code != 200 {
			t.Fatalf("file create: %d %s", a.Code, a.Body)
		}
		for range 2 {
			if a := createOpenAIUpload(t, base, "/v1/openai/v1", 10); a.Code != 200 {
				t.Fatalf("upload create: %d %s", a.Code, a.Body)
			}
		}
		wantLimited(t, "4th OpenAI upload create", createOpenAIUpload(t, base, "/v1/openai/v1", 10), 3, true)
		a, _ := newSession(t, base, "limits", "native", 10)
		wantLimited(t, "native create after 3 OpenAI ones", a, 3, false)
	})
}

// A long upload admitted before its subject ran out of uploads goes on to
// the end: appends, offset queries and OpenAI parts and completion are
// never counted, with the subject over its upload limit throughout.
func TestAppendsAreNeverLimited(t *testing.T) {
	eachLimitedStore(t, RateLimits{Uploads: 2, Retrievals: 2, Deletions: 1}, func(t *testing.T, base string) {
		const chunk, chunks = 64 << 10, 40
		data := randomBytes(chunk * chunks)
		_, id := newSession(t, base, "long", "file.bin", len(data))
		if id == "" {
			t.Fatal("first create refused")
		}
		up := createOpenAIUpload(t, base, "/v1/openai/v1", 2*chunk)
		if up.Code != 200 {
			t.Fatalf("upload create: %d %s", up.Code, up.Body)
		}
		a, _ := newSession(t, base, "long", "other.bin", 10)
		wantLimited(t, "3rd create", a, 2, false)

		for i := range chunks {
			if i%10 == 5 && sessionOffset(t, base, id) != i*chunk { // a resuming client's question
				t.Fatalf("offset before chunk %d is wrong", i)
			}
			if a := appendChunk(t, base, id, i*chunk, data[i*chunk:(i+1)*chunk]); a.Code != 200 {
				t.Fatalf("chunk %d of an admitted upload: %d %s", i, a.Code, a.Body)
			}
		}

		uploadID := up.JSON(t)["id"].(string)
		var parts []string
		for range 2 {
			body, ctype := multipartBody(t, "data", "part", randomBytes(chunk))
			a := testhttp.Do(t, "POST", base+"/v1/openai/v1/uploads/"+uploadID+"/parts", body, "Content-Type", ctype)
			if a.Code != 200 {
				t.Fatalf("part of an admitted upload: %d %s", a.Code, a.Body)
			}
			parts = append(parts, a.JSON(t)["id"].(string))
		}
		done := testhttp.Do(t, "POST", base+"/v1/openai/v1/uploads/"+uploadID+"/complete",
			strings.NewReader(fmt.Sprintf(`{"part_ids":[%q,%q]}`, parts[0], parts[1])), "Content-Type", "application/json")
		if done.Code != 200 || done.JSON(t)["status"] != "completed" {
			t.Fatalf("complete: %d %s", done.Code, done.Body)
		}

		// Retrievals and deletions are counted, and health checks are not.
		mustDownload(t, base, "long", "file.bin", data)
		if a := testhttp.Do(t, "GET", base+"/v1/files/long/file.bin", nil); a.Code != 200 {
			t.Fatalf("2nd retrieval: %d %s", a.Code, a.Body)
		}
		wantLimited(t, "3rd retrieval", testhttp.Do(t, "GET", base+"/v1/openai/v1/files", nil), 2, true)
		for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/metrics"} {
			if a := testhttp.Do(t, "GET", base+path, nil); a.Code != 200 || a.Header.Get("RateLimit-Limit") != "" {
				t.Fatalf("GET %s: %d, RateLimit-Limit %q; operations routes are not limited", path, a.Code, a.Header.Get("RateLimit-Limit"))
			}
		}
		if a := testhttp.Do(t, "DELETE", base+"/v1/files/long/file.bin", nil); a.Code != 204 && a.Code != 200 {
			t.Fatalf("delete: %d %s", a.Code, a.Body)
		}
		wantLimited(t, "2nd deletion", testhttp.Do(t, "DELETE", base+"/v1/files/long/other.bin", nil), 1, false)
	})
}

// With its Redis unreachable the limiter fails open: requests are served,
// without RateLimit headers, and counted as failures.
func TestLimiterDownFailsOpen(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	limits := RateLimits{Limiter: ratelimit.NewRedis(c, "x:"), Uploads: 1}
	base := serveLimited(t, store, blobs, limits)
	for i := range 3 {
		a, _ := newSession(t, base, "open", fmt.Sprint(i), 10)
		if a.Code != 201 || a.Header.Get("RateLimit-Limit") != "" {
			t.Fatalf("create %d with the limiter down: %d %s, RateLimit-Limit %q", i, a.Code, a.Body, a.Header.Get("RateLimit-Limit"))
		}
	}
	metrics := testhttp.Do(t, "GET", base+"/metrics", nil)
	if !bytes.Contains(metrics.Body, []byte(`ferry_rate_limit_failures_total{class="uploads"} 3`)) {
		t.Fatalf("metrics lack ferry_rate_limit_failures_total{class=\"uploads\"} 3:\n%s", metrics.Body)
	}
}

// Under API keys each key has its own budget, whatever address it comes
// from: one key running out leaves another on the same address alone.
func TestLimitsPerKey(t *testing.T) {
	store, blobs := testsvc.Embedded(t)
	keys, secrets := testKeyring(t)
	d := apiDeps(t, store, blobs)
	d.Keys, d.Limits = keys, RateLimits{Limiter: ratelimit.NewMemory(), Uploads: 2}
	srv := httptest.NewServer(New(d))
	t.Cleanup(srv.Close)
	create := func(key, name string) testhttp.Answer {
		return testhttp.Do(t, "POST", srv.URL+"/v1/files", strings.NewReader(fmt.Sprintf(`{"bucket":"a1","key":%q,"size":10}`, name)),
			"Authorization", "Bearer "+secrets[key], "Content-Type", "application/json")
	}
	for i := range 2 {
		if a := create("wa", fmt.Sprint("wa", i)); a.Code != 201 {
			t.Fatalf("create %d as wa: %d %s", i+1, a.Code, a.Body)
		}
	}
	wantLimited(t, "3rd create as wa", create("wa", "wa2"), 2, false)
	if a := create("wall", "wall0"); a.Code != 201 || a.Header.Get("RateLimit-Remaining") != "1" {
		t.Fatalf("another key from the same address: %d %s, RateLimit-Remaining %q", a.Code, a.Body, a.Header.Get("RateLimit-Remaining"))
	}
}
