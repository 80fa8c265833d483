package testsvc

import (
	"bytes"
	"context"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/metastore"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// Stores are the metadata store and the blob backend one variant of a test
// runs on.
type Stores struct {
	Name  string // "embedded", "redis+s3" or "cluster+s3": the subtest's name
	Meta  metastore.Store
	Blobs bucket.Backend
	// S3 is what Blobs sends its requests through (after StoreOptions.WrapS3);
	// nil on the filesystem.
	S3 s3blob.API
}

// StoreOptions choose the variants and how their S3 backend is built.
type StoreOptions struct {
	Cluster  bool   // also run on a Redis Cluster + S3, as "cluster+s3"
	S3Prefix string // object prefix of the S3 backend
	// WrapS3, when set, stands between the S3 backend and the client, so a
	// test can count or fail the requests.
	WrapS3 func(s3blob.API) s3blob.API
}

// Names lists the variants EachStore runs, in order.
func (o StoreOptions) Names() []string {
	if o.Cluster {
		return []string{"embedded", "redis+s3", "cluster+s3"}
	}
	return []string{"embedded", "redis+s3"}
}

// EachStore runs fn as a parallel subtest on each variant: the embedded
// default (bbolt + filesystem), production (Redis + S3) and, with
// o.Cluster, a Redis Cluster + S3.
func EachStore(t *testing.T, o StoreOptions, fn func(t *testing.T, s Stores)) {
	for _, name := range o.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, Open(t, name, o))
		})
	}
}

// Open returns the named variant's stores, removed when the test ends.
func Open(t testing.TB, name string, o StoreOptions) Stores {
	t.Helper()
	if name == "embedded" {
		meta, blobs := Embedded(t)
		return Stores{Name: name, Meta: meta, Blobs: blobs}
	}
	var s Stores
	switch name {
	case "redis+s3":
		rc, prefix := Redis(t)
		s.Meta = redisstore.New(rc, prefix)
	case "cluster+s3":
		rc, prefix := RedisCluster(t)
		s.Meta = redisstore.New(rc, prefix)
	default:
		t.Fatalf("testsvc: unknown stores %q", name)
	}
	client, bkt := S3(t)
	s.Name, s.S3 = name, client
	if o.WrapS3 != nil {
		s.S3 = o.WrapS3(client)
	}
	s.Blobs = s3blob.New(s.S3, bkt, o.S3Prefix)
	return s
}

// DirectUpload writes data to key as one multipart upload in parts of part
// bytes (the last may be shorter), straight through mp: the baseline the
// upload benchmarks compare Ferry with.
func DirectUpload(tb testing.TB, mp bucket.Multipart, key string, data []byte, part int) {
	tb.Helper()
	ctx := context.Background()
	id, err := mp.CreateMultipart(ctx, key, bucket.PutOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var parts []bucket.Part
	for off := 0; off < len(data); off += part {
		n := min(part, len(data)-off)
		p, err := mp.UploadPart(ctx, key, id, len(parts)+1, bytes.NewReader(data[off:off+n]), int64(n), nil)
		if err != nil {
			tb.Fatal(err)
		}
		parts = append(parts, p)
	}
	if _, err := mp.CompleteMultipart(ctx, key, id, parts); err != nil {
		tb.Fatal(err)
	}
}
