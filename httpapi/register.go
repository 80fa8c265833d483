package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// Registration of existing data (register_bucket and register_bucket_file
// of Llama Stack's files.py protocol).

// bucketRegistration is files.py's BucketRegistrationResponse plus the
// location and what was found there.
type bucketRegistration struct {
	Bucket string `json:"bucket"`
	// Name is the bucket the location is registered as, when the request
	// named only the location (then Bucket is the URI, as in files.py).
	Name      string `json:"name,omitempty"`
	Location  string `json:"location"`
	CreatedAt int64  `json:"created_at"`
	Status    string `json:"status"` // registered or unregistered
	FileCount int64  `json:"file_count"`
	Bytes     int64  `json:"bytes"`
	// CountTruncated: counting stopped at 10,000 objects; there are more.
	CountTruncated bool `json:"count_truncated"`
}

// fileRegistration is files.py's FileRegistrationResponse plus the file's
// description.
type fileRegistration struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	CreatedAt int64  `json:"created_at"`
	Status    string `json:"status"`
	Location  string `json:"location"`
	MimeType  string `json:"mime_type"`
	Bytes     int64  `json:"bytes"`
	ETag      string `json:"etag,omitempty"`
	URL       string `json:"url"`
	FileID    string `json:"file_id"`
}

func toBucketRegistration(reg registry.Registration, status string) bucketRegistration {
	return bucketRegistration{Bucket: reg.Bucket, Location: reg.Location, CreatedAt: reg.CreatedAt.Unix(), Status: status,
		FileCount: reg.Files, Bytes: reg.Bytes, CountTruncated: reg.Partial}
}

func toFileRegistration(r *http.Request, file registry.File, location string) fileRegistration {
	return fileRegistration{Bucket: file.Bucket, Key: file.Key, CreatedAt: file.CreatedAt.Unix(), Status: "registered",
		Location: location, MimeType: file.MimeType, Bytes: file.Bytes, ETag: file.ETag,
		URL: fileURL(r, file.Bucket, file.Key), FileID: file.ID}
}

// routeBucket returns the route's bucket, validated.
func routeBucket(r *http.Request) (string, error) {
	bkt := mux.Vars(r)["bucket"]
	if err := bucket.ValidateBucketName(bkt); err != nil {
		return "", session.ErrInvalidBucket.New("%v", err)
	}
	return bkt, nil
}

// registerBucket answers 201 for a new registration and 200 for a repeat.
func (f *files) registerBucket(w http.ResponseWriter, r *http.Request) {
	bkt, err := routeBucket(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req struct {
		Location string `json:"location"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if req.Location == "" {
		writeError(w, r, errcode.ErrInvalidRequest.New(`location is required, as in {"location": "s3://bucket/prefix"} or {"location": "file:///srv/data"}`))
		return
	}
	reg, created, err := f.registry.RegisterBucket(r.Context(), bkt, req.Location)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, registered(w, r, bkt, created), toBucketRegistration(reg, "registered"))
}

// registered is the status of a bucket registration: 201 with Location
// when it is new, as every create answers, and 200 for a repeat.
func registered(w http.ResponseWriter, r *http.Request, bkt string, created bool) int {
	if !created {
		return http.StatusOK
	}
	w.Header().Set("Location", baseURL(r)+"/v1/files/"+bkt)
	return http.StatusCreated
}

// unregisterBucket forgets the registration; the data stays.
func (f *files) unregisterBucket(w http.ResponseWriter, r *http.Request) {
	bkt, err := routeBucket(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	reg, err := f.registry.UnregisterBucket(r.Context(), bkt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, toBucketRegistration(reg, "unregistered"))
}

func (f *files) registerFile(w http.ResponseWriter, r *http.Request) {
	if uri, key, ok := locationInPath(r); ok {
		f.registerByLocation(w, r, uri, key)
		return
	}
	bkt, key, err := bucketKey(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	file, err := f.registry.RegisterFile(r.Context(), bkt, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	reg, err := f.registry.Places().Registration(r.Context(), bkt)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, toFileRegistration(r, file, reg.Location))
}

// checksumsSuffix names the route that computes a registered file's checksums.
const checksumsSuffix = ":checksums"

// checksumFile computes and records the checksums of a file in a
// registered bucket (it reads the bytes once), and answers the file.
func (f *files) checksumFile(w http.ResponseWriter, r *http.Request) {
	bkt, key, err := bucketKey(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	file, err := f.registry.Checksum(r.Context(), bkt, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, toFileResponse(r, file))
}

// locationInPath finds files.py's literal form, where the {bucket} path
// parameter is a percent-encoded storage URI: PUT /v1/files/s3%3A%2F%2Fdata
// [/key] (':' may be left as is). Decoded, its slashes make the router see
// a bucket and a key, so the escaped path is read instead.
func locationInPath(r *http.Request) (uri, key string, ok bool) {
	rest, found := strings.CutPrefix(r.URL.EscapedPath(), "/v1/files/")
	first, tail, _ := strings.Cut(rest, "/")
	uri, err1 := url.PathUnescape(first)
	key, err2 := url.PathUnescape(tail)
	return uri, key, found && err1 == nil && err2 == nil && strings.Contains(uri, "://")
}

// registerByLocation registers the location under registry.NameFor's name
// and answers as files.py does, with bucket the URI and the name beside it;
// with a key it registers that file of the location.
func (f *files) registerByLocation(w http.ResponseWriter, r *http.Request, uri, key string) {
	if r.ContentLength > 0 {
		writeError(w, r, errcode.ErrInvalidRequest.New("PUT /v1/files/<percent-encoded location> takes no body; "+
			`to choose the bucket name, PUT /v1/files/<name> with {"location": %q}`, uri))
		return
	}
	loc, err := registry.ParseLocation(uri)
	if err != nil {
		writeError(w, r, err)
		return
	}
	name := registry.NameFor(loc)
	reg, created, err := f.registry.RegisterBucket(r.Context(), name, loc.String())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if key == "" {
		out := toBucketRegistration(reg, "registered")
		out.Bucket, out.Name = loc.String(), name
		writeJSON(w, r, registered(w, r, name, created), out)
		return
	}
	if err := bucket.ValidateKey(key); err != nil {
		writeError(w, r, session.ErrInvalidKey.New("%v", err))
		return
	}
	file, err := f.registry.RegisterFile(r.Context(), name, key)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := toFileRegistration(r, file, reg.Location)
	out.Bucket = loc.String() // as the request named it
	writeJSON(w, r, http.StatusOK, out)
}
