package faults

import (
	"context"
	"io"

	"github.com/ferryhq/ferry/bucket"
)

// Backend returns b with every call counted by in and open to its faults.
// Method names are the interfaces'; keys are object keys, or the staging
// id for the Staging methods.
//
// The result implements exactly the optional capabilities b does
// (bucket.Multipart, bucket.Staging, bucket.Pinger): the session engine
// picks its strategy by type assertion, and a wrapper that hid one, or
// claimed one b lacks, would change what the suite tests.
func Backend(b bucket.Backend, in *Injector) bucket.Backend {
	c := &blobCore{next: b, in: in}
	mp, isMP := b.(bucket.Multipart)
	st, isST := b.(bucket.Staging)
	p, isP := b.(bucket.Pinger)
	c.mp, c.st, c.p = mp, st, p

	// One struct per combination: each embedded type adds exactly one
	// interface's methods, so the method set is b's, no more and no less.
	base, mpm, stm, pm := blobBase{c}, multipartMethods{c}, stagingMethods{c}, pingerMethods{c}
	switch {
	case isMP && isST && isP:
		return struct {
			blobBase
			multipartMethods
			stagingMethods
			pingerMethods
		}{base, mpm, stm, pm}
	case isMP && isST:
		return struct {
			blobBase
			multipartMethods
			stagingMethods
		}{base, mpm, stm}
	case isMP && isP:
		return struct {
			blobBase
			multipartMethods
			pingerMethods
		}{base, mpm, pm}
	case isST && isP:
		return struct {
			blobBase
			stagingMethods
			pingerMethods
		}{base, stm, pm}
	case isMP:
		return struct {
			blobBase
			multipartMethods
		}{base, mpm}
	case isST:
		return struct {
			blobBase
			stagingMethods
		}{base, stm}
	case isP:
		return struct {
			blobBase
			pingerMethods
		}{base, pm}
	}
	return base
}

type blobCore struct {
	next bucket.Backend
	mp   bucket.Multipart
	st   bucket.Staging
	p    bucket.Pinger
	in   *Injector
}

type blobBase struct{ c *blobCore }

func (b blobBase) Put(ctx context.Context, key string, r io.Reader, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	return call(ctx, b.c.in, KindBlob, "Put", key, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return b.c.next.Put(ctx, key, r, size, opts)
	})
}

type opened struct {
	rc   io.ReadCloser
	info bucket.ObjectInfo
}

func (b blobBase) Get(ctx context.Context, key string, rng *bucket.Range) (io.ReadCloser, bucket.ObjectInfo, error) {
	o, err := callDiscard(ctx, b.c.in, KindBlob, "Get", key, func(ctx context.Context) (opened, error) {
		rc, info, err := b.c.next.Get(ctx, key, rng)
		return opened{rc, info}, err
	}, func(o opened) { _ = o.rc.Close() })
	return o.rc, o.info, err
}

func (b blobBase) Head(ctx context.Context, key string) (bucket.ObjectInfo, error) {
	return call(ctx, b.c.in, KindBlob, "Head", key, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return b.c.next.Head(ctx, key)
	})
}

func (b blobBase) Delete(ctx context.Context, key string) error {
	return call0(ctx, b.c.in, KindBlob, "Delete", key, func(ctx context.Context) error {
		return b.c.next.Delete(ctx, key)
	})
}

type objList struct {
	objs []bucket.ObjectInfo
	more bool
}

func (b blobBase) List(ctx context.Context, prefix, after string, limit int) ([]bucket.ObjectInfo, bool, error) {
	l, err := call(ctx, b.c.in, KindBlob, "List", prefix, func(ctx context.Context) (objList, error) {
		objs, more, err := b.c.next.List(ctx, prefix, after, limit)
		return objList{objs, more}, err
	})
	return l.objs, l.more, err
}

type multipartMethods struct{ c *blobCore }

func (m multipartMethods) CreateMultipart(ctx context.Context, key string, opts bucket.PutOptions) (string, error) {
	return call(ctx, m.c.in, KindBlob, "CreateMultipart", key, func(ctx context.Context) (string, error) {
		return m.c.mp.CreateMultipart(ctx, key, opts)
	})
}

func (m multipartMethods) UploadPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64, sum *bucket.Checksum) (bucket.Part, error) {
	return call(ctx, m.c.in, KindBlob, "UploadPart", key, func(ctx context.Context) (bucket.Part, error) {
		return m.c.mp.UploadPart(ctx, key, uploadID, n, r, size, sum)
	})
}

func (m multipartMethods) CompleteMultipart(ctx context.Context, key, uploadID string, parts []bucket.Part) (bucket.ObjectInfo, error) {
	return call(ctx, m.c.in, KindBlob, "CompleteMultipart", key, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return m.c.mp.CompleteMultipart(ctx, key, uploadID, parts)
	})
}

func (m multipartMethods) AbortMultipart(ctx context.Context, key, uploadID string) error {
	return call0(ctx, m.c.in, KindBlob, "AbortMultipart", key, func(ctx context.Context) error {
		return m.c.mp.AbortMultipart(ctx, key, uploadID)
	})
}

func (m multipartMethods) ListMultipart(ctx context.Context, prefix string) ([]bucket.Upload, error) {
	return call(ctx, m.c.in, KindBlob, "ListMultipart", prefix, func(ctx context.Context) ([]bucket.Upload, error) {
		return m.c.mp.ListMultipart(ctx, prefix)
	})
}

type stagingMethods struct{ c *blobCore }

func (s stagingMethods) StageWrite(ctx context.Context, id string, offset int64, r io.Reader, n int64) error {
	return call0(ctx, s.c.in, KindBlob, "StageWrite", id, func(ctx context.Context) error {
		return s.c.st.StageWrite(ctx, id, offset, r, n)
	})
}

func (s stagingMethods) StageCommit(ctx context.Context, id, key string, size int64, opts bucket.PutOptions) (bucket.ObjectInfo, error) {
	return call(ctx, s.c.in, KindBlob, "StageCommit", id, func(ctx context.Context) (bucket.ObjectInfo, error) {
		return s.c.st.StageCommit(ctx, id, key, size, opts)
	})
}

func (s stagingMethods) StageDiscard(ctx context.Context, id string) error {
	return call0(ctx, s.c.in, KindBlob, "StageDiscard", id, func(ctx context.Context) error {
		return s.c.st.StageDiscard(ctx, id)
	})
}

type pingerMethods struct{ c *blobCore }

func (p pingerMethods) Ping(ctx context.Context) error {
	return call0(ctx, p.c.in, KindBlob, "Ping", "", p.c.p.Ping)
}
