package s3blob

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/internal/crc32c"
)

// Full-object CRC32C. An upload created with FullObjectCRC32C sends every
// part with its CRC32C and completes with the parts' combined CRC32C, so
// storage refuses an assembly that is not the bytes the parts carried
// (ChecksumType FULL_OBJECT, S3 since 2025; MinIO and versitygw too, and
// MinIO insists on every part's CRC). A part's CRC is computed as it
// streams and sent in a trailer (trailer.go), so nothing is buffered.

// fullObject asks for a FULL_OBJECT CRC32C multipart upload.
func fullObject(in *s3.CreateMultipartUploadInput) {
	in.ChecksumAlgorithm, in.ChecksumType = types.ChecksumAlgorithmCrc32c, types.ChecksumTypeFullObject
}

// unsupported maps a refused full-object create to ErrChecksumUnsupported.
func unsupported(key string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NotImplemented", "InvalidArgument", "InvalidRequest", "UnsupportedArgument":
			return fmt.Errorf("s3 create multipart %s: %w: %w", key, bucket.ErrChecksumUnsupported, err)
		}
	}
	return mapErr("create multipart", key, err)
}

// completedParts lists the parts for CompleteMultipartUpload and, when
// every part has a CRC32C, the whole object's.
func completedParts(parts []bucket.Part) ([]types.CompletedPart, *uint32) {
	cp := make([]types.CompletedPart, len(parts))
	var whole uint32
	all := true
	for i, p := range parts {
		cp[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
		if p.CRC32C == nil {
			all = false
			continue
		}
		cp[i].ChecksumCRC32C = aws.String(crc32c.Encode(*p.CRC32C))
		whole = crc32c.Combine(whole, *p.CRC32C, p.Size)
	}
	if !all {
		for i := range cp {
			cp[i].ChecksumCRC32C = nil
		}
		return cp, nil
	}
	return cp, &whole
}
