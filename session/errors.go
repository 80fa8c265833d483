package session

import (
	"net/http"

	"github.com/ferryhq/ferry/errcode"
)

// Session error codes. A 409 for an offset carries the server's offset in
// the body so the client can resume from it.
var (
	ErrNotFound         = errcode.Register("SESSION_NOT_FOUND", "Upload Session Not Found", http.StatusNotFound)
	ErrExpired          = errcode.Register("SESSION_EXPIRED", "Upload Session Expired", http.StatusGone)
	ErrOffsetMismatch   = errcode.Register("OFFSET_MISMATCH", "Offset Mismatch", http.StatusConflict)
	ErrBusy             = errcode.Register("SESSION_BUSY", "Upload Session Busy", http.StatusConflict)
	ErrCompleted        = errcode.Register("SESSION_COMPLETED", "Upload Session Already Completed", http.StatusConflict)
	ErrPastSize         = errcode.Register("CHUNK_PAST_SIZE", "Chunk Runs Past Declared Size", http.StatusRequestEntityTooLarge)
	ErrChunkTooSmall    = errcode.Register("CHUNK_TOO_SMALL", "Chunk Too Small", http.StatusBadRequest)
	ErrLengthRequired   = errcode.Register("LENGTH_REQUIRED", "Length Required", http.StatusLengthRequired)
	ErrShortBody        = errcode.Register("SHORT_BODY", "Body Shorter Than Declared", http.StatusBadRequest)
	ErrInvalidBucket    = errcode.Register("INVALID_BUCKET", "Invalid Bucket Name", http.StatusBadRequest)
	ErrInvalidKey       = errcode.Register("INVALID_KEY", "Invalid Key", http.StatusBadRequest)
	ErrInvalidSize      = errcode.Register("INVALID_SIZE", "Invalid Size", http.StatusBadRequest)
	ErrTooLarge         = errcode.Register("FILE_TOO_LARGE", "File Too Large", http.StatusRequestEntityTooLarge)
	ErrKeyConflict      = errcode.Register("KEY_CONFLICT", "Key Conflicts With Another Key", http.StatusConflict)
	ErrInvalidChecksum  = errcode.Register("INVALID_CHECKSUM", "Invalid Checksum Header", http.StatusBadRequest)
	ErrChecksumMismatch = errcode.Register("CHECKSUM_MISMATCH", "Checksum Mismatch", http.StatusBadRequest)
	ErrStorageLost      = errcode.Register("SESSION_STORAGE_LOST", "Upload Session Storage Lost", http.StatusGone)
	// Parallel parts (parts.go).
	ErrInvalidPartSize = errcode.Register("INVALID_PART_SIZE", "Invalid Part Size", http.StatusBadRequest)
	ErrInvalidPart     = errcode.Register("INVALID_PART", "Invalid Part", http.StatusBadRequest)
	ErrPartConflict    = errcode.Register("PART_CONFLICT", "Part Already Received With Other Bytes", http.StatusConflict)
	ErrPartBusy        = errcode.Register("PART_BUSY", "Part Busy", http.StatusConflict)
	ErrUploadMode      = errcode.Register("WRONG_UPLOAD_MODE", "Session Uploads The Other Way", http.StatusConflict)
)
