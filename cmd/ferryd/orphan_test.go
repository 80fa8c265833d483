package main

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testhttp"
	"github.com/ferryhq/ferry/internal/testsvc"
)

// sessions.orphan_age reaches the sweep: an upload in Ferry's storage that
// no session owns (as a kill -9 right after CreateMultipart leaves) is
// aborted once that old, and a live session's upload, older still, is
// kept and completes.
func TestOrphanAgeSetting(t *testing.T) {
	be := redisS3Env(t)
	p := startFerryd(t, be.args, append(be.env, "FERRY_SESSION_ORPHAN_AGE=2s", "FERRY_SESSION_PURGE_INTERVAL=300ms")...)
	c, err := s3blob.NewClient(context.Background(), testsvc.S3Config(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	uploads := func() []string {
		t.Helper()
		out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &be.bucket})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, u := range out.Uploads {
			keys = append(keys, aws.ToString(u.Key))
		}
		slices.Sort(keys)
		return keys
	}

	data := randomData(6 << 20)
	live := createSession(t, p, "orphans", "live.bin", len(data))
	id := live["id"].(string)
	if r := sendChunk(t, p, id, 0, data[:5<<20]); r.Code != 200 {
		t.Fatalf("first part: %d %s", r.Code, r.Body)
	}
	if _, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &be.bucket, Key: aws.String("orphans/lost.bin")}); err != nil {
		t.Fatal(err)
	}
	if got := uploads(); !slices.Equal(got, []string{"orphans/live.bin", "orphans/lost.bin"}) {
		t.Fatalf("multipart uploads %v, want the live session's and the orphan", got)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Equal(uploads(), []string{"orphans/live.bin"}) {
		if time.Now().After(deadline) {
			t.Fatalf("15 s on, with sessions.orphan_age 2s: multipart uploads %v, want only the live session's", uploads())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := sendChunk(t, p, id, 5<<20, data[5<<20:]); r.Code != 200 {
		t.Fatalf("last chunk after the sweep: %d %s", r.Code, r.Body)
	}
	got := testhttp.Do(t, "GET", "http://"+p.addr+"/v1/files/orphans/live.bin:content", nil)
	if got.Code != 200 || !bytes.Equal(got.Body, data) {
		t.Fatalf("the live file after the sweep: %d, %d bytes, want %d byte-exact", got.Code, len(got.Body), len(data))
	}
}
