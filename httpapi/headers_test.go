package httpapi

import (
	"errors"
	"net/http"
	"testing"
)

func TestParseChunkHeaders(t *testing.T) {
	cases := []struct {
		name          string
		uploadOffset  string
		contentRange  string
		contentLength int64
		want          chunkPos
		wantErr       bool
	}{
		{"nothing", "", "", 10, chunkPos{-1, -1, 10}, false},
		{"unknown length", "", "", -1, chunkPos{-1, -1, -1}, false},
		{"upload-offset", "5", "", 10, chunkPos{5, -1, 10}, false},
		{"upload-offset zero", "0", "", 0, chunkPos{0, -1, 0}, false},
		{"upload-offset negative", "-1", "", 10, chunkPos{}, true},
		{"upload-offset plus sign", "+1", "", 10, chunkPos{}, true},
		{"upload-offset spaces", " 1", "", 10, chunkPos{}, true},
		{"upload-offset overflow", "99999999999999999999", "", 10, chunkPos{}, true},
		{"content-range", "", "bytes 0-9/100", 10, chunkPos{0, 100, 10}, false},
		{"content-range no length", "", "bytes 10-19/100", -1, chunkPos{10, 100, 10}, false},
		{"content-range last byte", "", "bytes 99-99/100", 1, chunkPos{99, 100, 1}, false},
		{"content-range length mismatch", "", "bytes 0-9/100", 11, chunkPos{}, true},
		{"content-range past total", "", "bytes 0-100/100", -1, chunkPos{}, true},
		{"content-range reversed", "", "bytes 9-0/100", -1, chunkPos{}, true},
		{"content-range star total", "", "bytes 0-9/*", -1, chunkPos{}, true},
		{"content-range star", "", "bytes */100", -1, chunkPos{}, true},
		{"content-range unit", "", "items 0-9/100", -1, chunkPos{}, true},
		{"both agree", "10", "bytes 10-19/100", 10, chunkPos{10, 100, 10}, false},
		{"both disagree", "11", "bytes 10-19/100", 10, chunkPos{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.uploadOffset != "" {
				h.Set("Upload-Offset", tc.uploadOffset)
			}
			if tc.contentRange != "" {
				h.Set("Content-Range", tc.contentRange)
			}
			got, err := parseChunkHeaders(h, tc.contentLength)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseRange(t *testing.T) {
	cases := []struct {
		v    string
		size int64
		want *byteRange
		err  error // nil, errUnsatisfiable, or errBad for any other
	}{
		{"", 10, nil, nil},
		{"bytes=0-0", 10, &byteRange{0, 1}, nil},
		{"bytes=0-9", 10, &byteRange{0, 10}, nil},
		{"bytes=0-100", 10, &byteRange{0, 10}, nil},
		{"bytes=9-", 10, &byteRange{9, 1}, nil},
		{"bytes=10-", 10, nil, errUnsatisfiable},
		{"bytes=-3", 10, &byteRange{7, 3}, nil},
		{"bytes=-30", 10, &byteRange{0, 10}, nil},
		{"bytes=-0", 10, nil, errUnsatisfiable},
		{"bytes=0-", 0, nil, errUnsatisfiable},
		{"bytes=0-1,3-4", 10, nil, nil},
		{"items=0-1", 10, nil, nil},
		{"bytes=5-4", 10, nil, errBad},
		{"bytes=a-4", 10, nil, errBad},
		{"bytes=4", 10, nil, errBad},
	}
	for _, tc := range cases {
		got, err := parseRange(tc.v, tc.size)
		switch {
		case tc.err == errBad && (err == nil || errors.Is(err, errUnsatisfiable)):
			t.Errorf("%q/%d: err = %v, want a malformed-range error", tc.v, tc.size, err)
		case tc.err != errBad && !errors.Is(err, tc.err) && !(err == nil && tc.err == nil):
			t.Errorf("%q/%d: err = %v, want %v", tc.v, tc.size, err, tc.err)
		case tc.err == nil && (got == nil) != (tc.want == nil), got != nil && tc.want != nil && *got != *tc.want:
			t.Errorf("%q/%d: got %+v, want %+v", tc.v, tc.size, got, tc.want)
		}
	}
}

var errBad = errors.New("malformed")

func FuzzParseChunkHeaders(f *testing.F) {
	f.Add("5", "bytes 0-9/100", int64(10))
	f.Add("", "bytes 99-99/100", int64(-1))
	f.Fuzz(func(t *testing.T, uo, cr string, cl int64) {
		h := http.Header{}
		h.Set("Upload-Offset", uo)
		h.Set("Content-Range", cr)
		pos, err := parseChunkHeaders(h, cl)
		if err != nil {
			return
		}
		if cr != "" && (pos.offset < 0 || pos.length <= 0 || pos.offset+pos.length > pos.total) {
			t.Fatalf("accepted an impossible range %q → %+v", cr, pos)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-9", int64(10))
	f.Add("bytes=-5", int64(3))
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			return
		}
		r, err := parseRange(v, size)
		if err == nil && r != nil && (r.start < 0 || r.length <= 0 || r.start+r.length > size) {
			t.Fatalf("%q on %d bytes gave out-of-bounds %+v", v, size, r)
		}
	})
}
