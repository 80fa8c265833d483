package bucket

import "io"

// Composer is a blob backend with its optional capabilities resolved once,
// as tusd's StoreComposer does: a nil field is a capability the backend
// lacks. Decorators (metrics, fault injection) wrap it field by field, so
// they neither hide a capability nor claim one, and consumers read fields
// instead of asserting types.
type Composer struct {
	Backend   Backend   // the core; always set
	Multipart Multipart // S3-style multipart uploads
	Staging   Staging   // write-at-offset staging files (filesystem)
	// PartCopier makes parts from stored bytes (S3's UploadPartCopy).
	PartCopier PartCopier
	Pinger     Pinger    // a cheap reachability check (/readyz)
	Closer     io.Closer // releases what the backend holds open
	// Presigner hands out URLs to the backend's objects. It is not a method
	// of the backend but made beside it (from the S3 client), so whoever
	// builds the backend sets it.
	Presigner Presigner
}

// Compose resolves b's optional capabilities. It is the one place that
// asserts them.
func Compose(b Backend) Composer {
	c := Composer{Backend: b}
	c.Multipart, _ = b.(Multipart)
	c.Staging, _ = b.(Staging)
	c.PartCopier, _ = b.(PartCopier)
	c.Pinger, _ = b.(Pinger)
	c.Closer, _ = b.(io.Closer)
	return c
}

// Close closes the backend when it has something to close.
func (c Composer) Close() error {
	if c.Closer == nil {
		return nil
	}
	return c.Closer.Close()
}
