package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testhttp"
)

// crcOf is the CRC32C as FileResponse.checksums and S3 carry it,
// computed here, independently of Ferry.
func crcOf(data []byte) string {
	c := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	return base64.StdEncoding.EncodeToString([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
}

// Every way in records the whole file's CRC32C: native appends, parallel
// parts, tus (one request, and concatenation), and the OpenAI files and
// uploads routes. File info, the tus answers and downloads all carry it.
func TestWholeFileChecksums(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backendEnv) {
		p := be.start(t)
		base := "http://" + p.addr
		check := func(what, bkt, key string, data []byte) {
			t.Helper()
			want := crcOf(data)
			info := testhttp.Do(t, "GET", base+"/v1/files/"+bkt+"/"+key, nil).JSON(t)
			if sums, _ := info["checksums"].(map[string]any); sums == nil || sums["crc32c"] != want {
				t.Fatalf("%s: file info %v, want checksums.crc32c %s", what, info, want)
			}
			for _, method := range []string{"GET", "HEAD"} {
				r := testhttp.Do(t, method, base+"/v1/files/"+bkt+"/"+key+":content", nil)
				if d := r.Header.Get("Repr-Digest"); d != "crc32c=:"+want+":" || r.Header.Get("X-Amz-Checksum-Crc32c") != want {
					t.Fatalf("%s: %s :content Repr-Digest %q, x-amz-checksum-crc32c %q, want %s", what, method, d, r.Header.Get("X-Amz-Checksum-Crc32c"), want)
				}
			}
		}

		seq := randomData(6*MiB + 3)
		file := uploadHTTP(t, p, "b", "seq.bin", seq, MiB, 3*MiB) // held back, then parts
		if file["checksums"].(map[string]any)["crc32c"] != crcOf(seq) {
			t.Fatalf("the last append's FileResponse = %v", file)
		}
		check("sequential", "b", "seq.bin", seq)

		par := randomData(17*MiB + 5)
		if _, err := client.New(base, nil).Upload(context.Background(), bytes.NewReader(par), int64(len(par)), "b", "par.bin",
			client.UploadOptions{Parallel: 3, PartSize: 5 * MiB}); err != nil {
			t.Fatal(err)
		}
		check("parallel", "b", "par.bin", par)

		tusData := randomData(MiB + 1)
		r := tusPost(t, base, tusData, "filename "+b64("one.bin"))
		if r.StatusCode != http.StatusCreated || r.Header.Get("Repr-Digest") != "crc32c=:"+crcOf(tusData)+":" {
			t.Fatalf("tus creation with the whole body: %d, Repr-Digest %q", r.StatusCode, r.Header.Get("Repr-Digest"))
		}
		check("tus", "tus", "one.bin", tusData)

		a, b := randomData(5*MiB+1), randomData(77)
		pa := tusPost(t, base, a, "", "Upload-Concat", "partial").Header.Get("Location")
		pb := tusPost(t, base, b, "", "Upload-Concat", "partial").Header.Get("Location")
		r = tusPost(t, base, nil, "filename "+b64("joined.bin"), "Upload-Concat", "final;"+pa+" "+pb)
		joined := append(append([]byte{}, a...), b...)
		if r.StatusCode != http.StatusCreated || r.Header.Get("Repr-Digest") != "crc32c=:"+crcOf(joined)+":" {
			t.Fatalf("tus final upload: %d, Repr-Digest %q", r.StatusCode, r.Header.Get("Repr-Digest"))
		}
		check("tus concatenation", "tus", "joined.bin", joined)

		c := sdk(p, "/v1/openai/v1")
		small := randomData(70000)
		f := uploadSDK(t, c, "small.txt", small, openai.FilePurposeUserData)
		check("OpenAI file", "openai", f.ID+"/small.txt", small)
		up := openAIUpload(t, c, randomData(5*MiB+9), randomData(100))
		check("OpenAI upload", "openai", up.ID+"/big.jsonl", up.data)
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// tusPost creates a tus upload in the "tus" bucket with its whole body.
func tusPost(t *testing.T, base string, body []byte, meta string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/tus/", bytes.NewReader(body))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Metadata", strings.Trim("bucket "+b64("tus")+","+meta, ","))
	if len(hdr) == 0 || !strings.HasPrefix(hdr[1], "final") {
		req.Header.Set("Upload-Length", strconv.Itoa(len(body)))
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("tus POST %v: %d", hdr, resp.StatusCode)
	}
	return resp
}

type sdkFile struct {
	ID   string
	data []byte
}

// openAIUpload sends parts through the OpenAI Uploads API and completes it.
func openAIUpload(t *testing.T, c openai.Client, parts ...[]byte) sdkFile {
	t.Helper()
	ctx := context.Background()
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	up, err := c.Uploads.New(ctx, openai.UploadNewParams{Bytes: int64(len(all)), Filename: "big.jsonl",
		MimeType: "text/jsonl", Purpose: openai.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(parts))
	for i, p := range parts {
		part, err := c.Uploads.Parts.New(ctx, up.ID, openai.UploadPartNewParams{Data: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		ids[i] = part.ID
	}
	done, err := c.Uploads.Complete(ctx, up.ID, openai.UploadCompleteParams{PartIDs: ids})
	if err != nil || done.File.ID == "" {
		t.Fatal(fmt.Errorf("complete: %+v, %w", done, err))
	}
	return sdkFile{ID: done.File.ID, data: all}
}
