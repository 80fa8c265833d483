package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferryhq/ferry/bucket"
)

// Full-object checksums on S3. A session's multipart upload asks storage
// to check the whole object's CRC32C at completion (bucket.PutOptions
// .FullObjectCRC32C): every part goes up with its CRC32C, computed as it
// streams, and completion sends their combination, which must also equal
// the CRC the session kept of every byte it took (digests.go), so neither
// a part recorded in the wrong place nor a late write-behind upload of
// other bytes can assemble into a published file. Concatenations are the
// exception: their parts are copied inside storage (UploadPartCopy), which
// MinIO refuses into such an upload. Storage that refuses full-object
// uploads is noted once per location and logged; its uploads go on
// without, checked by the session's own CRC only.

// createUpload starts rec's multipart upload, full-object checked unless
// storage cannot or the parts will be copied.
func (e *multipartEngine) createUpload(ctx context.Context, rec *record) (string, error) {
	opts := bucket.PutOptions{ContentType: rec.MimeType}
	opts.FullObjectCRC32C = !e.noFullCRC.Load() && len(rec.Pieces) == 0
	id, err := e.mp.CreateMultipart(ctx, rec.object(), opts)
	if errors.Is(err, bucket.ErrChecksumUnsupported) {
		if !e.noFullCRC.Swap(true) {
			e.log.WarnContext(ctx, "full_object_checksums_unsupported", "location", rec.Location, "err", err,
				"effect", "multipart uploads here are checked by ferryd's own CRC32C only, not by storage at completion")
		}
		opts.FullObjectCRC32C = false
		id, err = e.mp.CreateMultipart(ctx, rec.object(), opts)
	}
	rec.FullCRC = opts.FullObjectCRC32C && err == nil
	return id, err
}

// partSum is what a part of rec goes up with: the client's digest of it,
// passed on for storage to check, or (in a full-object upload, where every
// part needs its CRC32C) a request to compute the CRC32C as it streams;
// the client's other digests are then checked by the session alone.
func partSum(rec *record, client *Checksum) *Checksum {
	if !rec.FullCRC || client != nil && client.Algo == "crc32c" {
		return client
	}
	return bucket.ComputeCRC32C
}

// completionParts are the parts CompleteMultipart gets: with their CRCs,
// which must add up to the session's, in a full-object upload; without,
// so that storage checks nothing it was not asked to, otherwise.
func completionParts(rec *record) ([]bucket.Part, error) {
	if !rec.FullCRC {
		parts := make([]bucket.Part, len(rec.Parts))
		for i, p := range rec.Parts {
			p.CRC32C = nil
			parts[i] = p
		}
		return parts, nil
	}
	crc, ok := partsCRC(rec.Parts)
	if !ok || rec.CRC32C != nil && crc != *rec.CRC32C {
		return nil, fmt.Errorf("session %s: its parts do not add up to the bytes it took (CRC32C %08x of the parts, %v taken); "+
			"the upload is not completed: abort it and upload the file again", rec.ID, crc, ptrHex(rec.CRC32C))
	}
	return rec.Parts, nil
}

func ptrHex(p *uint32) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%08x", *p)
}
