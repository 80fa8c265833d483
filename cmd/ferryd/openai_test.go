package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func sdk(p *proc, prefix string) openai.Client {
	return openai.NewClient(option.WithBaseURL("http://"+p.addr+prefix+"/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func statusOf(err error) int {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// messageOf is the server's message inside the SDK's typed error.
func messageOf(err error) string {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return apiErr.Message
	}
	return ""
}

func uploadSDK(t *testing.T, c openai.Client, name string, data []byte, purpose openai.FilePurpose) *openai.FileObject {
	t.Helper()
	f, err := c.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(bytes.NewReader(data), name, "text/plain"), Purpose: purpose})
	if err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return f
}

func TestOpenAIFilesLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		c := sdk(p, "/v1/openai/v1")
		ctx := context.Background()
		data := []byte("hello from the official SDK\n")
		f := uploadSDK(t, c, "greeting.txt", data, openai.FilePurposeAssistants)
		if !strings.HasPrefix(f.ID, "file-") || len(f.ID) != 37 || f.Filename != "greeting.txt" || f.Bytes != int64(len(data)) ||
			f.Purpose != "assistants" || f.Object != "file" || f.Status == "" || f.ExpiresAt != 0 {
			t.Fatalf("uploaded file = %+v", f)
		}
		got, err := c.Files.Get(ctx, f.ID)
		if err != nil || got.ID != f.ID || got.Filename != f.Filename || got.CreatedAt != f.CreatedAt {
			t.Fatalf("retrieve = %+v, %v", got, err)
		}
		resp, err := c.Files.Content(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(body, data) || resp.Header.Get("Content-Disposition") != `attachment; filename=greeting.txt` {
			t.Fatalf("content = %q, disposition %q", body, resp.Header.Get("Content-Disposition"))
		}
		page, err := c.Files.List(ctx, openai.FileListParams{})
		if err != nil || len(page.Data) != 1 || page.Data[0].ID != f.ID || page.HasMore {
			t.Fatalf("list = %+v, %v", page, err)
		}
		del, err := c.Files.Delete(ctx, f.ID)
		if err != nil || !del.Deleted || del.ID != f.ID {
			t.Fatalf("delete = %+v, %v", del, err)
		}
		if _, err := c.Files.Get(ctx, f.ID); statusOf(err) != 404 {
			t.Fatalf("retrieve after delete: %v, want NotFound", err)
		}
		if _, err := c.Files.Delete(ctx, f.ID); statusOf(err) != 404 {
			t.Fatalf("second delete: %v, want NotFound", err)
		}
		if _, err := c.Files.Content(ctx, f.ID); statusOf(err) != 404 {
			t.Fatalf("content after delete: %v, want NotFound", err)
		}
		// Llama Stack's docs spell the prefix this way too: it serves the same API.
		other := sdk(p, "/v1/openAi/v1")
		if _, err := other.Files.List(ctx, openai.FileListParams{}); err != nil {
			t.Fatalf("/v1/openAi/v1: %v", err)
		}
	})
}

// Files created within one second are all paged, exactly once, both ways.
func TestOpenAIPaginationAndPurpose(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		c := sdk(p, "/v1/openai/v1")
		ctx := context.Background()
		var ids []string
		for i := 0; i < 7; i++ {
			purpose := openai.FilePurposeBatch
			if i%3 == 0 {
				purpose = openai.FilePurposeUserData
			}
			ids = append(ids, uploadSDK(t, c, fmt.Sprintf("f%d.jsonl", i), []byte{byte(i)}, purpose).ID)
		}
		for _, order := range []openai.FileListParamsOrder{openai.FileListParamsOrderAsc, openai.FileListParamsOrderDesc} {
			var got []string
			iter := c.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(2), Order: order})
			for iter.Next() {
				got = append(got, iter.Current().ID)
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			want := append([]string(nil), ids...)
			if order == openai.FileListParamsOrderDesc {
				for i, j := 0, len(want)-1; i < j; i, j = i+1, j-1 {
					want[i], want[j] = want[j], want[i]
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("order %s paged %v, want %v", order, got, want)
			}
		}
		page, err := c.Files.List(ctx, openai.FileListParams{Limit: openai.Int(3), Order: openai.FileListParamsOrderAsc})
		if err != nil || len(page.Data) != 3 || !page.HasMore {
			t.Fatalf("first page = %+v, %v", page, err)
		}
		var raw struct {
			FirstID string `json:"first_id"`
			LastID  string `json:"last_id"`
		}
		r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/openai/v1/files?limit=3&order=asc&after="+ids[2], nil)
		if err := jsonDecode(r.Body, &raw); err != nil || raw.FirstID != ids[3] || raw.LastID != ids[5] {
			t.Fatalf("second page first/last = %+v (%v), want %s/%s", raw, err, ids[3], ids[5])
		}

		batch, err := c.Files.List(ctx, openai.FileListParams{Purpose: openai.String("batch"), Order: openai.FileListParamsOrderAsc})
		if err != nil || len(batch.Data) != 4 {
			t.Fatalf("purpose=batch = %d files, %v; want 4", len(batch.Data), err)
		}
		for _, f := range batch.Data {
			if f.Purpose != "batch" {
				t.Fatalf("purpose filter let through %+v", f)
			}
		}
		if _, err := c.Files.List(ctx, openai.FileListParams{Purpose: openai.String("nonsense")}); statusOf(err) != 400 ||
			!strings.Contains(messageOf(err), "fine-tune") {
			t.Fatalf("bad purpose filter: %v", err)
		}
		_, err = c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("x"), "x.txt", "text/plain"), Purpose: "nonsense"})
		if statusOf(err) != 400 || !strings.Contains(messageOf(err), "user_data") {
			t.Fatalf("bad purpose upload: %v, want 400 listing the purposes", err)
		}
		if all, _ := c.Files.List(ctx, openai.FileListParams{}); len(all.Data) != 7 {
			t.Fatalf("a refused upload left a file: %d files", len(all.Data))
		}
	})
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

// expires_after through the SDK and as raw bracket form fields.
func TestOpenAIExpiresAfter(t *testing.T) {
	p := embeddedEnv(t).start(t)
	c := sdk(p, "/v1/openai/v1")
	f, err := c.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(strings.NewReader("temp"), "t.txt", "text/plain"), Purpose: openai.FilePurposeBatch,
		ExpiresAfter: openai.FileNewParamsExpiresAfter{Seconds: 3600}})
	if err != nil || f.ExpiresAt != f.CreatedAt+3600 {
		t.Fatalf("SDK expires_after: %+v %v", f, err)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("purpose", "batch")
	_ = w.WriteField("expires_after[anchor]", "created_at")
	_ = w.WriteField("expires_after[seconds]", "7200")
	fw, _ := w.CreateFormFile("file", "raw.txt")
	_, _ = fw.Write([]byte("raw"))
	_ = w.Close()
	r := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/openai/v1/files", &body, "Content-Type", w.FormDataContentType())
	m := r.JSON(t)
	if r.Code != 200 || m["expires_at"] != m["created_at"].(float64)+7200 {
		t.Fatalf("raw bracket fields: %d %v", r.Code, m)
	}
	body.Reset()
	w = multipart.NewWriter(&body)
	_ = w.WriteField("purpose", "batch")
	_ = w.WriteField("expires_after[anchor]", "created_at")
	_ = w.WriteField("expires_after[seconds]", "10")
	fw, _ = w.CreateFormFile("file", "raw.txt")
	_, _ = fw.Write([]byte("raw"))
	_ = w.Close()
	r = testhttp.Do(t, "POST", "http://"+p.addr+"/v1/openai/v1/files", &body, "Content-Type", w.FormDataContentType())
	if e, _ := r.JSON(t)["error"].(map[string]any); r.Code != 400 || !strings.Contains(fmt.Sprint(e["message"]), "3600") {
		t.Fatalf("too short an expiry: %d %s", r.Code, r.Body)
	}
}

// A large file through the Uploads API, parts sent concurrently.
func TestOpenAIUploads(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		c := sdk(p, "/v1/openai/v1")
		ctx := context.Background()
		parts := [][]byte{randomData(6 * MiB), randomData(5*MiB + 3), randomData(1234)}
		var all []byte
		for _, part := range parts {
			all = append(all, part...)
		}
		up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(all)), Filename: "big.jsonl",
			MimeType: "text/jsonl", Purpose: openai.FilePurposeBatch})
		if err != nil || up.Status != "pending" || up.ExpiresAt != up.CreatedAt+3600 {
			t.Fatalf("create upload = %+v, %v", up, err)
		}
		ids := make([]string, len(parts))
		var wg sync.WaitGroup
		for i := len(parts) - 1; i >= 0; i-- { // in parallel, started in reverse
			wg.Add(1)
			go func() {
				defer wg.Done()
				part, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(parts[i])})
				if err != nil {
					t.Errorf("part %d: %v", i, err)
					return
				}
				ids[i] = part.ID
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		if _, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: ids[:2]}); statusOf(err) != 400 {
			t.Fatalf("complete with missing bytes: %v, want 400", err)
		}
		if _, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: ids, Md5: openai.String(strings.Repeat("0", 32))}); statusOf(err) != 400 {
			t.Fatalf("complete with a wrong md5: %v, want 400", err)
		}
		sum := md5.Sum(all)
		done, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: ids, Md5: openai.String(hex.EncodeToString(sum[:]))})
		if err != nil || done.Status != "completed" || done.File.Bytes != int64(len(all)) || done.File.Filename != "big.jsonl" {
			t.Fatalf("complete = %+v, %v", done, err)
		}
		resp, err := c.Files.Content(ctx, done.File.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if sha256.Sum256(got) != sha256.Sum256(all) {
			t.Fatalf("joined content differs (%d bytes)", len(got))
		}
		if _, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: strings.NewReader("late")}); statusOf(err) != 400 {
			t.Fatalf("part after completion: %v", err)
		}
		// The parts are gone: only the joined file remains.
		if r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/openai-uploads", nil); r.Code != 404 {
			t.Fatalf("upload parts left behind: %d %s", r.Code, r.Body)
		}

		up2, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: 3, Filename: "c.txt", MimeType: "text/plain", Purpose: openai.FilePurposeBatch})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Uploads.Parts.New(ctx, up2.ID, openai.UploadPartNewParams{Data: strings.NewReader("abc")}); err != nil {
			t.Fatal(err)
		}
		if cancelled, err := c.Uploads.Cancel(ctx, up2.ID); err != nil || cancelled.Status != "cancelled" {
			t.Fatalf("cancel = %+v, %v", cancelled, err)
		}
		if _, err := c.Uploads.Cancel(ctx, "upload_nope"); statusOf(err) != 404 {
			t.Fatalf("cancel unknown: %v", err)
		}
	})
}

// An OpenAI file is a native file, and a native file in the OpenAI bucket
// is an OpenAI file.
func TestOpenAIAndNativeAreOneStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		c := sdk(p, "/v1/openai/v1")
		ctx := context.Background()
		f := uploadSDK(t, c, "report final.pdf", []byte("%PDF-1.4"), openai.FilePurposeUserData)
		list := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/openai", nil).JSON(t)
		entries := list["data"].([]any)
		native := entries[0].(map[string]any)
		if len(entries) != 1 || native["file_id"] != f.ID || native["key"] != f.ID+"/report_final.pdf" {
			t.Fatalf("native listing = %v", list)
		}
		if got := download(t, native["url"].(string)); string(got) != "%PDF-1.4" {
			t.Fatalf("native read = %q", got)
		}

		uploadHTTP(t, p, "openai", "notes/readme.txt", []byte("native bytes"), 100)
		page, err := c.Files.List(ctx, openai.FileListParams{Order: openai.FileListParamsOrderAsc})
		if err != nil || len(page.Data) != 2 {
			t.Fatalf("OpenAI list = %+v, %v", page, err)
		}
		nf := page.Data[1]
		if nf.Filename != "readme.txt" || nf.Purpose != "user_data" || nf.Bytes != 12 {
			t.Fatalf("native file seen through OpenAI = %+v", nf)
		}
		resp, err := c.Files.Content(ctx, nf.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != "native bytes" {
			t.Fatalf("OpenAI read of a native file = %q", got)
		}
		// Error envelope on an unknown route under the prefix.
		r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/openai/v1/nope", nil)
		if e, ok := r.JSON(t)["error"].(map[string]any); r.Code != 404 || !ok || e["type"] != "invalid_request_error" {
			t.Fatalf("unknown OpenAI route: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "POST", "http://"+p.addr+"/v1/openai/v1/files", strings.NewReader("{}"), "Content-Type", "application/json"); r.Code != http.StatusBadRequest {
			t.Fatalf("non-multipart upload: %d %s", r.Code, r.Body)
		}
	})
}

// An OpenAI SDK whose base URL is ferryd's /v1 works as at /v1/openai/v1,
// beside the native API: POST /v1/files multipart is an upload (JSON a
// session), /v1/files/file-… a file, GET /v1/files the file list for the
// SDK (it sends X-Stainless-* headers) and the bucket list for everyone
// else; Uploads and vector stores are at the root too.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestRootServesBothAPIs ./cmd/ferryd/
func TestRootServesBothAPIs(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		c := sdk(p, "/v1")
		ctx := context.Background()
		f := uploadSDK(t, c, "notes.txt", []byte("refunds take five days\n"), openai.FilePurposeAssistants)
		if got, err := c.Files.Get(ctx, f.ID); err != nil || got.ID != f.ID {
			t.Fatalf("retrieve at the root: %+v, %v", got, err)
		}
		resp, err := c.Files.Content(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "refunds take five days\n" {
			t.Fatalf("content at the root: %q", body)
		}
		page, err := c.Files.List(ctx, openai.FileListParams{})
		if err != nil || len(page.Data) != 1 || page.Data[0].ID != f.ID {
			t.Fatalf("SDK list at the root: %+v, %v", page, err)
		}
		vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("kb"), FileIDs: []string{f.ID}})
		if err != nil {
			t.Fatalf("vector store at the root: %v", err)
		}
		if got, err := c.VectorStores.Get(ctx, vs.ID); err != nil || got.ID != vs.ID {
			t.Fatalf("get the store: %+v, %v", got, err)
		}
		up, err := c.Uploads.New(ctx, openai.UploadNewParams{Filename: "u.txt", Bytes: 3, MimeType: "text/plain", Purpose: openai.FilePurposeAssistants})
		if err != nil {
			t.Fatalf("Upload at the root: %v", err)
		}
		if _, err := c.Uploads.Cancel(ctx, up.ID); err != nil {
			t.Fatalf("cancel: %v", err)
		}

		// The native API, as ever, for clients that are not OpenAI SDKs.
		uploadHTTP(t, p, "photos", "a.jpg", []byte("jpeg"), 4)
		r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files", nil)
		if r.Code != 200 || !strings.Contains(string(r.Body), `"name":"photos"`) || strings.Contains(string(r.Body), f.ID) {
			t.Fatalf("native bucket list: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files?purpose=assistants", nil); r.Code != 200 || !strings.Contains(string(r.Body), f.ID) {
			t.Fatalf("OpenAI list by its parameters: %d %s", r.Code, r.Body)
		}
		if r := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/"+f.ID, nil); r.Code != 200 || r.JSON(t)["object"] != "file" {
			t.Fatalf("file id at the root with curl: %d %s", r.Code, r.Body)
		}
		if _, err := c.Files.Delete(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
		// A bucket named like a file id could never be reached: refused.
		r = testhttp.Do(t, "POST", "http://"+p.addr+"/v1/files", strings.NewReader(`{"bucket":"file-0123456789abcdef0123456789abcdef","key":"k","size":1}`))
		if r.Code != 400 || !strings.Contains(string(r.Body), "OpenAI file id") {
			t.Fatalf("a bucket named like a file id: %d %s", r.Code, r.Body)
		}
	})
}
