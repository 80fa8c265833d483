package faults

import (
	"context"
	"io"

	"github.com/ferryhq/ferry/bucket"
)

// Backend returns c with every call counted by in and open to its faults.
// Method names are the interfaces'; keys are object keys, or the staging
// id for the Staging methods.
//
// Each capability of c is wrapped on its own and one c lacks stays nil: a
// wrapper that hid one, or claimed one c lacks, would change which engine
// the session picks and so what the suite tests. Closer passes through.
func Backend(c bucket.Composer, in *Injector) bucket.Composer {
	core := &blobCore{c: c, in: in}
	out := bucket.Composer{Backend: blobBase{core}, Closer: c.Closer, Presigner: c.Presigner}
	if c.Multipart != nil {
		out.Multipart = multipartMethods{core}
	}
	if c.Staging != nil {
		out.Staging = stagingMethods{core}
	}
	if c.PartCopier != nil {
		out.PartCopier = copierMethods{core}
	}
	if c.Pinger != nil {
		out.Pinger = pingerMethods{core}
	}
	return out
}

type blobCore struct {
	c  bucket.Composer // the wrapped backend
	in *Injector
}

type blobBase struct{ c *blobCore }

func (b blobBase) Put(ctx context.Context, key string, r io.Reader, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	return call(ctx, b.c.in, KindBlob, "Put", key, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return b.c.c.Backend.Put(ctx, key, r, size, opts)
	})
}

type opened struct {
	rc   io.ReadCloser
	info bucket.ObjectInfo
}

func (b blobBase) Get(ctx context.Context, key string, rng *bucket.Range) (io.ReadCloser, bucket.ObjectInfo, error) {
	o, err := callDiscard(ctx, b.c.in, KindBlob, "Get", key, func(ctx context.Context) (opened, error) {
		rc, info, err := b.c.c.Backend.Get(ctx, key, rng)
		return opened{rc, info}, err
	}, func(o opened) { _ = o.rc.Close() })
	return o.rc, o.info, err
}

func (b blobBase) Head(ctx context.Context, key string) (bucket.ObjectInfo, error) {
	return call(ctx, b.c.in, KindBlob, "Head", key, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return b.c.c.Backend.Head(ctx, key)
	})
}

func (b blobBase) Delete(ctx context.Context, key string) error {
	return call0(ctx, b.c.in, KindBlob, "Delete", key, func(ctx context.Context) error {
		return b.c.c.Backend.Delete(ctx, key)
	})
}

type objList struct {
	objs []bucket.ObjectInfo
	more bool
}

func (b blobBase) List(ctx context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	l, err := call(ctx, b.c.in, KindBlob, "List", prefix, func(ctx context.Context) (objList, error) {
		objs, more, err := b.c.c.Backend.List(ctx, prefix, after, limit)
		return objList{objs, more}, err
	})
	return l.objs, l.more, err
}

type multipartMethods struct{ c *blobCore }

func (m multipartMethods) CreateMultipart(ctx context.Context, key string, opts bucket.PutOptions) (string, error) {
	return call(ctx, m.c.in, KindBlob, "CreateMultipart", key, func(ctx context.Context) (string, error) {
		return m.c.c.Multipart.CreateMultipart(ctx, key, opts)
	})
}

func (m multipartMethods) UploadPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64, sum *bucket.Checksum) (bucket.Part, error) {
	return call(ctx, m.c.in, KindBlob, "UploadPart", key, func(ctx context.Context) (bucket.Part, error) {
		return m.c.c.Multipart.UploadPart(ctx, key, uploadID, n, r, size, sum)
	})
}

func (m multipartMethods) CompleteMultipart(ctx context.Context, key, uploadID string, parts []bucket.Part) (bucket.ObjectInfo, error) {
	return call(ctx, m.c.in, KindBlob, "CompleteMultipart", key, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return m.c.c.Multipart.CompleteMultipart(ctx, key, uploadID, parts)
	})
}

func (m multipartMethods) AbortMultipart(ctx context.Context, key, uploadID string) error {
	return call0(ctx, m.c.in, KindBlob, "AbortMultipart", key, func(ctx context.Context) error {
		return m.c.c.Multipart.AbortMultipart(ctx, key, uploadID)
	})
}

func (m multipartMethods) ListMultipart(ctx context.Context, prefix string) ([]bucket.Upload, error) {
	return call(ctx, m.c.in, KindBlob, "ListMultipart", prefix, func(ctx context.Context) ([]bucket.Upload, error) {
		return m.c.c.Multipart.ListMultipart(ctx, prefix)
	})
}

type stagingMethods struct{ c *blobCore }

func (s stagingMethods) StageWrite(ctx context.Context, id string, offset int64, r io.Reader, n int64) error {
	return call0(ctx, s.c.in, KindBlob, "StageWrite", id, func(ctx context.Context) error {
		return s.c.c.Staging.StageWrite(ctx, id, offset, r, n)
	})
}

type copierMethods struct{ c *blobCore }

func (m copierMethods) CopyPart(ctx context.Context, key, uploadID string, n int, src string, rng bucket.Range) (bucket.Part, error) {
	return call(ctx, m.c.in, KindBlob, "CopyPart", key, func(ctx context.Context) (bucket.Part, error) {
		return m.c.c.PartCopier.CopyPart(ctx, key, uploadID, n, src, rng)
	})
}

func (s stagingMethods) StageWriteAt(ctx context.Context, id string, offset int64, r io.Reader, n int64) error {
	return call0(ctx, s.c.in, KindBlob, "StageWriteAt", id, func(ctx context.Context) error {
		return s.c.c.Staging.StageWriteAt(ctx, id, offset, r, n)
	})
}

func (s stagingMethods) StageCheck(ctx context.Context, key string) error {
	return call0(ctx, s.c.in, KindBlob, "StageCheck", key, func(ctx context.Context) error {
		return s.c.c.Staging.StageCheck(ctx, key)
	})
}

func (s stagingMethods) StageCommit(ctx context.Context, id, key string, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	return call(ctx, s.c.in, KindBlob, "StageCommit", id, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return s.c.c.Staging.StageCommit(ctx, id, key, size, opts)
	})
}

func (s stagingMethods) StageDiscard(ctx context.Context, id string) error {
	return call0(ctx, s.c.in, KindBlob, "StageDiscard", id, func(ctx context.Context) error {
		return s.c.c.Staging.StageDiscard(ctx, id)
	})
}

type pingerMethods struct{ c *blobCore }

func (p pingerMethods) Ping(ctx context.Context) error {
	return call0(ctx, p.c.in, KindBlob, "Ping", "", p.c.c.Pinger.Ping)
}
