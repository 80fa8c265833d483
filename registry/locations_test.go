package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/bucket/fsblob"
	"github.com/ferryhq/ferry/bucket/s3blob"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/internal/testsvc"
)

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		uri, want string // want "" means INVALID_LOCATION
	}{
		{"s3://datasets", "s3://datasets"},
		{"s3://datasets/2024/", "s3://datasets/2024"},
		{"s3://datasets//2024", "s3://datasets/2024"},
		{"s3://datasets/a//b", ""},
		{"s3://datasets/a/../b", ""},
		{"s3://Data_Sets", ""},
		{"s3://10.0.0.1:9000/x", ""},
		{"s3://user@datasets", ""},
		{"s3://datasets?versionId=1", ""},
		{"file:///srv/data", "file:///srv/data"},
		{"file://localhost/srv/data/", "file:///srv/data"},
		{"file:///srv/data/../../etc", "file:///etc"}, // cleaned here; confinement refuses it later
		{"file://srv/data", ""},
		{"file:relative", ""},
		{"http://example.com/x", ""},
		{"/srv/data", ""},
		{"", ""},
		{"%zz", ""},
		// Nothing inside a staging directory, in any letter case.
		{"file:///srv/data/.ferry-staging", ""},
		{"file:///srv/data/sub/.FERRY-STAGING/sessions", ""},
		{"file:///srv/.ferry-staging/../data", "file:///srv/data"}, // cleaned first: no such segment is left
		{"file:///srv/ferry-staging", "file:///srv/ferry-staging"},
		{"s3://datasets/x/.ferry-staging", ""},
		{"s3://datasets/.Ferry-Staging/x", ""},
		{"s3://datasets/" + strings.Repeat("k", 256), ""},
		{"s3://datasets/" + strings.Repeat("k", 255), "s3://datasets/" + strings.Repeat("k", 255)},
	} {
		loc, err := ParseLocation(c.uri)
		switch {
		case c.want == "" && !errcode.Is(err, ErrInvalidLocation):
			t.Errorf("%q: got %v, %v; want INVALID_LOCATION", c.uri, loc, err)
		case c.want != "" && (err != nil || loc.String() != c.want):
			t.Errorf("%q: got %q, %v; want %q", c.uri, loc, err, c.want)
		}
	}
}

func TestOverlaps(t *testing.T) {
	parse := func(s string) Location {
		l, err := ParseLocation(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"s3://bkt", "s3://bkt/x", true},
		{"s3://bkt/x", "s3://bkt/x/y", true},
		{"s3://bkt/x", "s3://bkt/xy", false},
		{"s3://bkt/x", "s3://cat/x", false},
		{"file:///srv", "file:///srv/data", true},
		{"file:///srv/data", "file:///srv/database", false},
		{"file:///srv", "s3://srv-bucket", false},
	} {
		if got := parse(c.a).Overlaps(parse(c.b)); got != c.want {
			t.Errorf("%s overlaps %s = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := parse(c.b).Overlaps(parse(c.a)); got != c.want {
			t.Errorf("%s overlaps %s = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

// eachStore runs fn with a registry on each pair of stores.
func eachStore(t *testing.T, fn func(t *testing.T, r *Registry)) {
	testsvc.EachStore(t, testsvc.StoreOptions{}, func(t *testing.T, s testsvc.Stores) {
		fn(t, New(s.Meta, NewResolver(s.Meta, bucket.Compose(s.Blobs), Locations{})))
	})
}

func registerWant(t *testing.T, r *Registry, bkt, uri string, want errcode.Code, mention ...string) {
	t.Helper()
	_, _, err := r.RegisterBucket(context.Background(), bkt, uri)
	if !errcode.Is(err, want) {
		t.Fatalf("register %s at %s = %v, want %s", bkt, uri, err, want.Value)
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("register %s at %s: %q does not mention %q", bkt, uri, err, m)
		}
	}
}

func registerOK(t *testing.T, r *Registry, bkt, uri string, wantCreated bool) Registration {
	t.Helper()
	reg, created, err := r.RegisterBucket(context.Background(), bkt, uri)
	if err != nil || created != wantCreated {
		t.Fatalf("register %s at %s = %+v, created %v, %v; want created %v", bkt, uri, reg, created, err, wantCreated)
	}
	return reg
}

// No file:// registration may be inside, contain or equal another, in
// either order, whatever symbolic links the path goes through; nor lie in
// a staging directory. Then the exploit, an outer registration
// reaching sub/.ferry-staging/..., cannot be set up, and a staging
// directory left behind is out of reach anyway.
func TestRegisterRefusesOverlappingDirectories(t *testing.T) {
	eachStore(t, func(t *testing.T, r *Registry) {
		ctx := context.Background()
		roots := t.TempDir()
		data, sub, other := filepath.Join(roots, "data"), filepath.Join(roots, "data", "sub"), filepath.Join(roots, "data2")
		for _, d := range []string{sub, other} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for link, target := range map[string]string{"to-sub": sub, "to-data": data, "to-roots": roots} {
			if err := os.Symlink(target, filepath.Join(roots, link)); err != nil {
				t.Fatal(err)
			}
		}
		r.places.locs = (Locations{Roots: []string{roots}, OpenDir: openDir})

		// Outer first.
		registerOK(t, r, "outer", "file://"+data, true)
		for name, dir := range map[string]string{
			"inner":   sub,
			"same":    data,
			"viasub":  filepath.Join(roots, "to-sub"),
			"viadata": filepath.Join(roots, "to-data"),
			"around":  roots,
			"aroundl": filepath.Join(roots, "to-roots"),
		} {
			registerWant(t, r, name, "file://"+dir, ErrLocationOverlap, `bucket "outer"`, "file://"+data)
		}
		registerOK(t, r, "outer", "file://"+data+"/", false) // a repeat stays fine
		registerOK(t, r, "beside", "file://"+other, true)    // data2 is not inside data
		if _, err := r.UnregisterBucket(ctx, "outer"); err != nil {
			t.Fatal(err)
		}

		// Inner first: the outer one is refused the same way.
		registerOK(t, r, "inner", "file://"+sub, true)
		registerWant(t, r, "outer", "file://"+data, ErrLocationOverlap, `bucket "inner"`)
		registerWant(t, r, "outer", "file://"+filepath.Join(roots, "to-data"), ErrLocationOverlap, `bucket "inner"`)

		// The inner registration's staging directory is refused, directly
		// or through a link, in any case.
		staging := filepath.Join(sub, fsblob.StagingDir)
		if _, err := os.Stat(staging); err != nil {
			t.Fatalf("the served directory has no staging directory: %v", err)
		}
		if err := os.Symlink(staging, filepath.Join(roots, "to-staging")); err != nil {
			t.Fatal(err)
		}
		for _, uri := range []string{"file://" + staging, "file://" + filepath.Join(staging, "sessions"),
			"file://" + filepath.Join(sub, ".FERRY-STAGING"), "file://" + filepath.Join(roots, "to-staging")} {
			registerWant(t, r, "stg", uri, ErrInvalidLocation, ".ferry-staging")
		}

		// A staging directory left behind by a former registration is out
		// of reach of one around it.
		if _, err := r.UnregisterBucket(ctx, "inner"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.UnregisterBucket(ctx, "beside"); err != nil {
			t.Fatal(err)
		}
		leftover := filepath.Join(staging, "sessions", "0123abcd")
		if err := os.WriteFile(leftover, []byte("an upload in progress"), 0o644); err != nil {
			t.Fatal(err)
		}
		registerOK(t, r, "outer", "file://"+data, true)
		p, err := r.places.Place(ctx, "outer")
		if err != nil {
			t.Fatal(err)
		}
		key := "sub/" + fsblob.StagingDir + "/sessions/0123abcd"
		if _, _, err := p.Backend.Get(ctx, p.Object(key), nil); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Fatalf("outer Get(%s) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := r.Get(ctx, "outer", key); !errcode.Is(err, ErrFileNotFound) {
			t.Fatalf("registry Get(%s) = %v, want FILE_NOT_FOUND", key, err)
		}
		if _, err := p.Backend.Put(ctx, p.Object(key), strings.NewReader("INJECTED"), 8, bucket.PutOptions{}); !errors.Is(err, bucket.ErrInvalidKey) {
			t.Fatalf("outer Put(%s) = %v, want ErrInvalidKey", key, err)
		}
		if objs, _, err := p.Backend.List(ctx, "", "", 100); err != nil || len(objs) != 0 {
			t.Fatalf("outer List = %+v, %v; want nothing", objs, err)
		}
		if got, _ := os.ReadFile(leftover); string(got) != "an upload in progress" {
			t.Fatalf("the staging file changed: %q", got)
		}
	})
}

// No s3:// registration may be inside, contain or equal another in the
// same S3 bucket, in either order; other buckets and sibling prefixes are
// fine.
func TestRegisterRefusesOverlappingPrefixes(t *testing.T) {
	client, err := s3blob.NewClient(context.Background(), testsvc.S3Config(t))
	if err != nil {
		t.Fatal(err)
	}
	_, lake := testsvc.S3(t)
	_, pond := testsvc.S3(t)
	eachStore(t, func(t *testing.T, r *Registry) {
		ctx := context.Background()
		r.places.locs = (Locations{OpenS3: func(bkt, prefix string) (bucket.Composer, error) {
			return bucket.Compose(s3blob.New(client, bkt, prefix)), nil
		}, S3Buckets: []string{lake}})
		tag := strings.ToLower(testsvc.Unique("p")) // the stores' runs share the S3 buckets
		base := "s3://" + lake + "/" + tag

		// Only listed buckets: ferryd's credentials may reach others.
		registerWant(t, r, "elsewhere", "s3://"+pond+"/"+tag+"/data", ErrLocationForbidden, "allowed_s3_buckets", pond)
		r.places.locs.S3Buckets = []string{lake, pond}

		registerOK(t, r, "outer", base+"/data", true)
		for name, uri := range map[string]string{
			"inner": base + "/data/sub",
			"same":  base + "/data/",
			"above": base,
		} {
			registerWant(t, r, name, uri, ErrLocationOverlap, `bucket "outer"`, base+"/data")
		}
		registerOK(t, r, "outer", base+"/data", false)
		registerOK(t, r, "sibling", base+"/database", true)
		registerOK(t, r, "elsewhere", "s3://"+pond+"/"+tag+"/data", true)
		for _, b := range []string{"outer", "sibling", "elsewhere"} {
			if _, err := r.UnregisterBucket(ctx, b); err != nil {
				t.Fatal(err)
			}
		}

		registerOK(t, r, "inner", base+"/data/sub", true)
		registerWant(t, r, "outer", base+"/data", ErrLocationOverlap, `bucket "inner"`)
		registerWant(t, r, "outer", base, ErrLocationOverlap, `bucket "inner"`)
		registerWant(t, r, "stg", base+"/data/sub/.ferry-staging", ErrInvalidLocation, ".ferry-staging")
		if _, err := r.UnregisterBucket(ctx, "inner"); err != nil {
			t.Fatal(err)
		}
	})
}

// Registrations are made one at a time: of two overlapping ones started
// together, exactly one succeeds.
func TestConcurrentOverlappingRegistrations(t *testing.T) {
	eachStore(t, func(t *testing.T, r *Registry) {
		roots := t.TempDir()
		sub := filepath.Join(roots, "data", "sub")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		r.places.locs = (Locations{Roots: []string{roots}, OpenDir: openDir})
		for round := range 5 {
			errs := make(chan error, 2)
			for name, dir := range map[string]string{"outer": filepath.Dir(sub), "inner": sub} {
				go func() {
					_, _, err := r.RegisterBucket(context.Background(), name, "file://"+dir)
					errs <- err
				}()
			}
			var got []string
			for range 2 {
				if err := <-errs; err == nil {
					got = append(got, "ok")
				} else if errcode.Is(err, ErrLocationOverlap) {
					got = append(got, "overlap")
				} else {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if slices.Sort(got); !slices.Equal(got, []string{"ok", "overlap"}) {
				t.Fatalf("round %d: %v; want one registration and one overlap", round, got)
			}
			for _, b := range []string{"outer", "inner"} {
				if _, err := r.UnregisterBucket(context.Background(), b); err != nil && !errcode.Is(err, ErrNotRegistered) {
					t.Fatal(err)
				}
			}
		}
	})
}

func openDir(dir string) (bucket.Composer, error) {
	b, err := fsblob.NewDir(dir)
	if err != nil {
		return bucket.Composer{}, err
	}
	return bucket.Compose(b), nil
}

func TestNameFor(t *testing.T) {
	long := "s3://datasets/" + strings.Repeat("deep/", 20) + "end"
	for uri, want := range map[string]string{
		"s3://datasets/2024":       "s3-datasets-2024",
		"s3://my.bucket/a.b/c":     "s3-my-bucket-a-b-c",
		"file:///srv/data/scans":   "file-srv-data-scans",
		"file:///srv/my%20data":    "file-srv-my-data",
		"file:///srv/Data_2/x--y/": "file-srv-Data_2-x--y",
		long:                       "",
	} {
		loc, err := ParseLocation(uri)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		got := NameFor(loc)
		if err := bucket.ValidateBucketName(got); err != nil {
			t.Errorf("%s → %q: %v", uri, got, err)
		}
		if want != "" && got != want {
			t.Errorf("%s → %q, want %q", uri, got, want)
		}
	}
	a, _ := ParseLocation(long)
	b, _ := ParseLocation(long + "2")
	if NameFor(a) == NameFor(b) || !strings.HasPrefix(NameFor(a), "s3-datasets-deep-") {
		t.Errorf("long names %q and %q", NameFor(a), NameFor(b))
	}
}
