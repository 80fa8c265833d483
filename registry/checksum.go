package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
)

// Checksum computes and records the checksums of a file in a registered
// bucket, which has none until asked: Ferry did not see its bytes arrive.
// It reads them once. The checksums hold for the object's ETag as it was
// read; once the object changes outside Ferry, Get drops them. A file
// Ferry stored already has its checksums, and gets them back unchanged.
func (r *Registry) Checksum(ctx context.Context, bkt, key string) (File, error) {
	p, err := r.places.Place(ctx, bkt)
	if err != nil {
		return File{}, err
	}
	f, err := r.getAt(ctx, p, bkt, key)
	if err != nil || f.Checksums != nil {
		return f, err
	}
	if p.Location == "" {
		// Only an upload from before Ferry kept checksums: publishing here
		// could race a replacement and index an old version over it.
		return File{}, errcode.ErrConflict.New("%s/%s was uploaded before Ferry kept checksums; upload it again to have them", bkt, key)
	}
	rc, _, err := r.Open(ctx, f, nil) // refuses another version than f's
	if err != nil {
		return File{}, err
	}
	defer rc.Close()
	sh := sha256.New()
	var crc uint32
	n, err := io.Copy(io.MultiWriter(sh, crcWriter{&crc}), rc)
	if err != nil {
		return File{}, fmt.Errorf("read %s/%s: %w", bkt, key, err)
	}
	if n != f.Bytes {
		return File{}, errcode.ErrUnavailable.New("%s/%s changed while it was read (%d bytes, not %d); retry", bkt, key, n, f.Bytes)
	}
	f.Checksums = &Checksums{CRC32C: crc32c.Encode(crc), SHA256: base64.StdEncoding.EncodeToString(sh.Sum(nil))}
	return r.Publish(ctx, f)
}

type crcWriter struct{ crc *uint32 }

func (w crcWriter) Write(p []byte) (int, error) {
	*w.crc = crc32c.Update(*w.crc, p)
	return len(p), nil
}
