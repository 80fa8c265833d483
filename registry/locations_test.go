package registry

import (
	"testing"

	"github.com/ferryhq/ferry/errcode"
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
