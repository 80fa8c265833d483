package testsvc

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The services `make test` starts are real and reachable.
func TestServicesReachable(t *testing.T) {
	ctx := context.Background()
	rc, prefix := Redis(t)
	if err := rc.Set(ctx, prefix+"k", "v", 0).Err(); err != nil {
		t.Fatalf("redis SET: %v", err)
	}
	if got := rc.Get(ctx, prefix+"k").Val(); got != "v" {
		t.Fatalf("redis GET = %q, want v", got)
	}
	c, b := S3(t)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String("a/b"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatalf("s3 PutObject: %v", err)
	}
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String("a/b")})
	if err != nil || aws.ToInt64(out.ContentLength) != 5 {
		t.Fatalf("s3 HeadObject = %v, %v; want 5 bytes", out, err)
	}
}
