package s3blob

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/bucket"
)

// Presigner makes short-lived GET URLs for the objects New(…, bkt, prefix)
// stores. Signing is local: no request reaches S3 until the URL is used.
type Presigner struct {
	pc     *s3.PresignClient
	bucket string
	prefix string
}

var _ bucket.Presigner = (*Presigner)(nil)

// NewPresigner signs with client's credentials, endpoint and addressing
// style, so the URLs point where the client does.
func NewPresigner(client *s3.Client, bkt, prefix string) *Presigner {
	return &Presigner{pc: s3.NewPresignClient(client), bucket: bkt, prefix: cleanPrefix(prefix)}
}

// PresignGet returns a URL that GETs key for ttl, with the response headers
// opts names.
func (p *Presigner) PresignGet(ctx context.Context, key string, ttl time.Duration, opts bucket.PresignOptions) (string, error) {
	if err := checkKey("presign", key); err != nil {
		return "", err
	}
	in := &s3.GetObjectInput{Bucket: &p.bucket, Key: aws.String(p.prefix + key)}
	if opts.ContentType != "" {
		in.ResponseContentType = &opts.ContentType
	}
	if opts.ContentDisposition != "" {
		in.ResponseContentDisposition = &opts.ContentDisposition
	}
	req, err := p.pc.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3 presign get %s: %w", key, err)
	}
	return req.URL, nil
}
