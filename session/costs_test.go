package session

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/internal/testsvc"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// redisCounter counts the commands the store sends and the bytes of their
// arguments (what crosses the network to Redis; replies are not counted).
type redisCounter struct{ cmds, bytes atomic.Int64 }

func (c *redisCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.note(cmd); return next(ctx, cmd) }
}

func (c *redisCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.note(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *redisCounter) note(cmd redis.Cmder) {
	c.cmds.Add(1)
	for _, a := range cmd.Args() {
		switch v := a.(type) {
		case string:
			c.bytes.Add(int64(len(v)))
		case []byte:
			c.bytes.Add(int64(len(v)))
		}
	}
}

// TestCapacityCosts measures what each step of an upload costs Redis and
// S3: the inputs of docs/scaling.md's capacity model. It checks the costs
// that the model relies on (a big append is one S3 write and no read; a
// held-back append no S3 request; a download one GET) and logs the rest.
//
//	CI=1 scripts/test.sh -count=1 -v -run TestCapacityCosts ./session/
func TestCapacityCosts(t *testing.T) {
	rc, prefix := testsvc.Redis(t)
	rcount := &redisCounter{}
	rc.AddHook(rcount)
	client, bkt := testsvc.S3(t)
	s3c := &counting{API: client, n: map[string]int{}}
	f := newService(t, redisstore.New(rc, prefix), bucket.Compose(s3blob.New(s3c, bkt, "ferry/")), s3c)
	ctx := context.Background()

	type cost struct {
		cmds, bytes int64
		s3          map[string]int
	}
	measure := func(fn func()) cost {
		c0, b0, s0 := rcount.cmds.Load(), rcount.bytes.Load(), s3c.snapshot()
		fn()
		return cost{rcount.cmds.Load() - c0, rcount.bytes.Load() - b0, diff(s0, s3c.snapshot())}
	}
	s3total := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	var rows []string
	row := func(what string, n int, c cost) {
		rows = append(rows, fmt.Sprintf("%-34s %6.1f Redis commands %10.0f Redis bytes   S3 %v",
			what, float64(c.cmds)/float64(n), float64(c.bytes)/float64(n), c.s3))
	}
	const MiB = 1 << 20
	data := randomBytes(24 * MiB)
	appendAt := func(id string, off, n int) {
		t.Helper()
		if _, _, err := f.svc.Append(ctx, id, Chunk{Offset: int64(off), Total: -1, Len: int64(n), Body: bytes.NewReader(data[off : off+n])}); err != nil {
			t.Fatal(err)
		}
	}

	// Big chunks: 24 MiB in 8 MiB appends.
	var big Info
	c := measure(func() {
		var err error
		if big, err = f.svc.Create(ctx, "cost", "big", "", int64(len(data))); err != nil {
			t.Fatal(err)
		}
	})
	row("create (multipart)", 1, c)
	c = measure(func() { appendAt(big.ID, 0, 8*MiB) })
	row("append 8 MiB, the first part", 1, c)
	if c.s3["CreateMultipartUpload"] != 1 || c.s3["UploadPart"] != 1 || s3total(c.s3) != 2 {
		t.Errorf("the first 8 MiB append made S3 requests %v, want one CreateMultipartUpload and one UploadPart", c.s3)
	}
	c = measure(func() { appendAt(big.ID, 8*MiB, 8*MiB) })
	row("append 8 MiB", 1, c)
	if c.s3["UploadPart"] != 1 || s3total(c.s3) != 1 {
		t.Errorf("an 8 MiB append made S3 requests %v, want one UploadPart", c.s3)
	}
	c = measure(func() { appendAt(big.ID, 16*MiB, 8*MiB) })
	row("append 8 MiB that completes", 1, c)

	// Small chunks: 1 MiB appends are held back until 5 make a part.
	var small Info
	small, err := f.svc.Create(ctx, "cost", "small", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	c = measure(func() { appendAt(small.ID, 0, MiB) })
	row("append 1 MiB, held back", 1, c)
	if s3total(c.s3) != 0 {
		t.Errorf("a held-back append made S3 requests %v", c.s3)
	}
	c = measure(func() {
		for off := MiB; off < 20*MiB; off += MiB {
			appendAt(small.ID, off, MiB)
		}
	})
	row("append 1 MiB, average of 19", 19, c)
	c = measure(func() {
		for off := 20 * MiB; off < 24*MiB; off += MiB {
			appendAt(small.ID, off, MiB)
		}
	})
	row("append 1 MiB, last 4 (completes)", 4, c)

	// A download of the finished file.
	c = measure(func() {
		file, err := f.files.Get(ctx, "cost", "small")
		if err != nil {
			t.Fatal(err)
		}
		r, _, err := f.files.Open(ctx, file, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil || n != int64(len(data)) {
			t.Fatalf("download read %d bytes: %v", n, err)
		}
	})
	row("download (metadata + bytes)", 1, c)
	if c.s3["GetObject"] != 1 || s3total(c.s3) != 1 {
		t.Errorf("a download made S3 requests %v, want one GetObject", c.s3)
	}
	t.Log("costs per step:\n" + strings.Join(rows, "\n"))
}
