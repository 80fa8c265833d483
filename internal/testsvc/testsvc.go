// Package testsvc hands tests the real Redis and S3 servers that `make test`
// starts (scripts/test.sh exports their addresses). A test that needs one
// fails when CI is set and the service is missing, and skips otherwise.
package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"

	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/metastore/redisstore"
)

// Environment variables exported by scripts/test.sh.
const (
	EnvRedisURL     = "FERRY_TEST_REDIS_URL"
	EnvRedisCluster = "FERRY_TEST_REDIS_CLUSTER" // comma-separated addresses of a 3-master cluster
	EnvS3Endpoint   = "FERRY_TEST_S3_ENDPOINT"
	EnvS3Region     = "FERRY_TEST_S3_REGION"
	EnvS3AccessKey  = "FERRY_TEST_S3_ACCESS_KEY"
	EnvS3SecretKey  = "FERRY_TEST_S3_SECRET_KEY"
)

// missing fails under CI and skips elsewhere.
func missing(t testing.TB, what, env string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI but %s is not set; run the tests with `make test`", what, env)
	}
	t.Skipf("%s not available (%s unset); `make test` starts one", what, env)
}

// Unique returns a short random name usable as a Redis prefix or S3 bucket.
func Unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// RedisURL returns the test Redis URL or fails/skips.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvRedisURL)
	if u == "" {
		missing(t, "Redis", EnvRedisURL)
	}
	return u
}

// Redis returns a client for the test Redis and a unique key prefix; the
// keys under that prefix are deleted when the test ends.
func Redis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", EnvRedisURL, err)
	}
	opt.MaintNotificationsConfig = redisstore.NoMaintNotifications()
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping test Redis: %v", err)
	}
	prefix := Unique("t") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		_ = c.Close()
	})
	return c, prefix
}

// RedisCluster returns a cluster client for the test Redis Cluster and a
// unique key prefix; the keys under that prefix are deleted, on every
// master, when the test ends.
func RedisCluster(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	addrs := os.Getenv(EnvRedisCluster)
	if addrs == "" {
		missing(t, "a Redis Cluster", EnvRedisCluster)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ","),
		MaintNotificationsConfig: redisstore.NoMaintNotifications()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping the test Redis Cluster: %v", err)
	}
	prefix := Unique("t") + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			iter := m.Scan(ctx, 0, prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				m.Del(ctx, iter.Val())
			}
			return nil
		})
		_ = c.Close()
	})
	return c, prefix
}

// S3Config returns the client configuration of the test S3 server.
func S3Config(t testing.TB) s3blob.ClientConfig {
	t.Helper()
	ep := os.Getenv(EnvS3Endpoint)
	if ep == "" {
		missing(t, "an S3 server", EnvS3Endpoint)
	}
	region := os.Getenv(EnvS3Region)
	if region == "" {
		region = "us-east-1"
	}
	return s3blob.ClientConfig{
		Endpoint:        ep,
		Region:          region,
		PathStyle:       true,
		AccessKeyID:     os.Getenv(EnvS3AccessKey),
		SecretAccessKey: os.Getenv(EnvS3SecretKey),
	}
}

// S3 returns a client for the test S3 server and a fresh, empty bucket.
// When the test ends the bucket is emptied and removed.
func S3(t testing.TB) (*s3.Client, string) {
	t.Helper()
	ctx := context.Background()
	c, err := s3blob.NewClient(ctx, S3Config(t))
	if err != nil {
		t.Fatalf("S3 client: %v", err)
	}
	name := strings.ToLower(Unique("ferry-test-"))
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create test bucket %s: %v", name, err)
	}
	t.Cleanup(func() { EmptyAndDeleteBucket(t, c, name) })
	return c, name
}

// EmptyAndDeleteBucket removes every object and multipart upload, then the bucket.
func EmptyAndDeleteBucket(t testing.TB, c *s3.Client, name string) {
	ctx := context.Background()
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(name)})
	if err == nil {
		for _, u := range ups.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(name), Key: u.Key, UploadId: u.UploadId})
		}
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		for _, o := range page.Contents {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: o.Key})
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Logf("delete test bucket %s: %v", name, err)
	}
}
