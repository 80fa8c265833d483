package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/ferryhq/ferry/bucket"
	"github.com/ferryhq/ferry/errcode"
	"github.com/ferryhq/ferry/registry"
	"github.com/ferryhq/ferry/session"
)

// Registration of existing data (seed 003's register_bucket and
// register_bucket_file).

// bucketRegistration is the seed's BucketRegistrationResponse plus the
// location and what was found there.
type bucketRegistration struct {
	Bucket    string `json:"bucket"`
	Location  string `json:"location"`
	CreatedAt int64  `json:"created_at"`
	Status    string `json:"status"` // registered or unregistered
	FileCount int64  `json:"file_count"`
	Bytes     int64  `json:"bytes"`
	// CountTruncated: counting stopped at 10,000 objects; there are more.
	CountTruncated bool `json:"count_truncated"`
}

// fileRegistration is the seed's FileRegistrationResponse plus the file's
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
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, r, status, toBucketRegistration(reg, "registered"))
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
	writeJSON(w, r, http.StatusOK, fileRegistration{Bucket: file.Bucket, Key: file.Key, CreatedAt: file.CreatedAt.Unix(),
		Status: "registered", Location: reg.Location, MimeType: file.MimeType, Bytes: file.Bytes, ETag: file.ETag,
		URL: fileURL(r, file.Bucket, file.Key), FileID: file.ID})
}
