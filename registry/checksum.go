package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/crc32c"
)

// Checksum computes and records the checksums a file lacks, reading its
// bytes once: a registered file has none until asked (Ferry did not see
// them arrive), a file stored before Ferry kept checksums has none, and a
// file uploaded in parts has a CRC32C but no SHA-256 (which cannot be
// combined from parts). The bytes read must match a CRC32C already
// recorded. The result is recorded only if the file is still the version
// that was read, checked under the key's lock (see replace.go); a file
// replaced meanwhile gets 503, to retry. A registered file's checksums
// hold for the ETag read: once the object changes outside Ferry, Get drops
// them. A file that has both gets them back unchanged.
func (r *Registry) Checksum(ctx context.Context, bkt, key string) (File, error) {
	p, err := r.places.Place(ctx, bkt)
	if err != nil {
		return File{}, err
	}
	f, err := r.getAt(ctx, p, bkt, key)
	if err != nil || f.Checksums != nil && f.Checksums.CRC32C != "" && f.Checksums.SHA256 != "" {
		return f, err
	}
	rc, f, err := r.Open(ctx, f, nil)
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
	sums := &Checksums{CRC32C: crc32c.Encode(crc), SHA256: base64.StdEncoding.EncodeToString(sh.Sum(nil))}
	if f.Checksums != nil && f.Checksums.CRC32C != "" && f.Checksums.CRC32C != sums.CRC32C {
		return File{}, fmt.Errorf("%s/%s: storage holds bytes whose CRC32C is %s, not the %s recorded when they were stored (same size and ETag): "+
			"the stored object is damaged", bkt, key, sums.CRC32C, f.Checksums.CRC32C)
	}
	var out File
	err = r.withKey(ctx, bkt, key, func(ctx context.Context) error {
		cur, err := r.getAt(ctx, p, bkt, key)
		if err != nil {
			return err
		}
		if cur.ID != f.ID || !sameVersion(cur, bucket.ObjectInfo{Size: f.Bytes, ETag: f.ETag}) {
			return errcode.ErrUnavailable.New("%s/%s was replaced while it was read; retry", bkt, key)
		}
		cur.Checksums = sums
		out, err = r.Publish(ctx, cur)
		return err
	})
	return out, err
}

type crcWriter struct{ crc *uint32 }

func (w crcWriter) Write(p []byte) (int, error) {
	*w.crc = crc32c.Update(*w.crc, p)
	return len(p), nil
}
