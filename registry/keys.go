package registry

// Persistent layout of the registry in the metadata store, the one place
// its names are written (docs/storage-layout.md maps every package's).
// Every name starts with "registry/"; indexes are ordered by member:
//
//	index  "registry/buckets"           member <bucket>   value {}           every bucket holding at least one file, and every registered bucket
//	index  "registry/files/<bucket>"    member <key>      value File (JSON)  one entry per file
//	index  "registry/fileids/<bucket>"  member <file id>  value File (JSON)  the same files in creation order
//	index  "registry/locations"         member <bucket>   value location URI registered buckets, for listing and overlap checks
//	record "registry/location/<bucket>" Registration (JSON); created with Version 0, so one name has one location
//	lock   "registry/register"          held while one registration checks overlaps and writes
//	index  "registry/pending/<bucket>"  member <key>#<file id>  value File (JSON)  a version whose bytes a completion is putting at the key (Replace)
//	lock   "registry/key/<bucket>/<key>" held while one completion puts a version at the key and publishes it, or a reader rolls one forward
//
// Layout 0 (before metastore/migrate's layout 1) named the indexes
// "buckets", "files/<bucket>", "fileids/<bucket>" and "locations".
//
// Blobs live in Ferry's own backend at ObjectKey(bucket, key) =
// "<bucket>/<key>", except in registered buckets, which live at their own
// location (locations.go).

const (
	bucketsIndex   = "registry/buckets"
	locationsIndex = "registry/locations"
	registerLock   = "registry/register"
)

func filesIndex(bkt string) string      { return "registry/files/" + bkt }
func idsIndex(bkt string) string        { return "registry/fileids/" + bkt }
func registrationKey(bkt string) string { return "registry/location/" + bkt }
func pendingIndex(bkt string) string    { return "registry/pending/" + bkt }
func keyLock(bkt, key string) string    { return "registry/key/" + bkt + "/" + key }

// pendingMember: '#' is in no key (bucket.ValidateKey), so the prefix
// key+"#" selects exactly one key's pending versions.
func pendingMember(key, id string) string { return key + "#" + id }

// ObjectKey is where a file's bytes live in the backend.
func ObjectKey(bkt, key string) string { return bkt + "/" + key }
