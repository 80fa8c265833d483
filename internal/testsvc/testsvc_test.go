package testsvc

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/metastore"
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

// countingS3 counts the requests that pass through it.
type countingS3 struct {
	s3blob.API
	puts *atomic.Int64
}

func (c countingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c.puts.Add(1)
	return c.API.PutObject(ctx, in, o...)
}

// EachStore runs every variant, in a subtest of its name, on working
// stores, with the S3 client wrapped where asked.
func TestEachStore(t *testing.T) {
	var mu sync.Mutex
	var ran []string
	t.Run("all", func(t *testing.T) {
		EachStore(t, StoreOptions{Cluster: true, S3Prefix: "p/", WrapS3: func(api s3blob.API) s3blob.API {
			return countingS3{api, new(atomic.Int64)}
		}}, func(t *testing.T, s Stores) {
			mu.Lock()
			ran = append(ran, s.Name)
			mu.Unlock()
			if !strings.HasSuffix(t.Name(), "/"+s.Name) {
				t.Errorf("subtest %s runs stores %s", t.Name(), s.Name)
			}
			ctx := context.Background()
			if _, err := metastore.PutJSON(ctx, s.Meta, "k", 1, metastore.Cond{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Blobs.Put(ctx, "o", strings.NewReader("x"), 1, bucket.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			switch c, ok := s.S3.(countingS3); {
			case s.Name == "embedded" && s.S3 != nil:
				t.Errorf("embedded stores have an S3 client")
			case s.Name != "embedded" && (!ok || c.puts.Load() != 1):
				t.Errorf("S3 = %T, want the wrapper to have seen one PutObject", s.S3)
			}
		})
	})
	slices.Sort(ran)
	if want := []string{"cluster+s3", "embedded", "redis+s3"}; !slices.Equal(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
}

// Each set of npm packages has its own cache directory, named after it.
func TestNodeCacheName(t *testing.T) {
	for _, c := range []struct {
		specs []string
		dir   string
	}{
		{[]string{"tus-js-client@4"}, "tus-js-client-4"},
		{[]string{"llama-stack-client@0.7.3", "openai@6"}, "llama-stack-client-0.7.3+openai-6"},
		{[]string{"@scope/pkg@2", "plain"}, "scope-pkg-2+plain"},
	} {
		if got := nodeCacheName(c.specs); got != c.dir {
			t.Errorf("nodeCacheName(%q) = %q, want %q", c.specs, got, c.dir)
		}
	}
	for spec, name := range map[string]string{"openai@6": "openai", "@scope/pkg@2": "@scope/pkg", "@scope/pkg": "@scope/pkg", "plain": "plain"} {
		if got := packageName(spec); got != name {
			t.Errorf("packageName(%q) = %q, want %q", spec, got, name)
		}
	}
}
