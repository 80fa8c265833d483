package session

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ferryhq/ferry/metastore/due"
)

// Persistent layout of sessions in the metadata store, the one place its
// names are written (docs/storage-layout.md maps every package's). Every
// name starts with "session/"; a session id is 32 hex digits (validID), so
// it never reads "expiry" or "held":
//
//	record "session/<id>"           JSON record; expires (TTL) a grace period after expires_at
//	record "session/<id>/tail/<k>"  a segment of the bytes held back for the next S3
//	                                part; segments tail_first..tail_first+tail_segs-1 (from the
//	                                session record) are valid. Each is written once and
//	                                lives a TTL longer than the record (engine.go)
//	index  "session/expiry"         a due list (metastore/due): member "<check-at unix ms,
//	                                16 digits>/<id>", value purgeRef and due.Retry's attempts;
//	                                the purger's work list (expires_at may have moved later).
//	                                Filed at create, and again when the upload starts, at
//	                                the create's member (replacing that entry unless it was
//	                                refiled); a refile writes the record's purgeRef, so any
//	                                two entries of a session converge
//	index  "session/held"           member <id>, value the bytes it holds back (decimal); the
//	                                held-back ledger all instances sum against MaxHeldTotal (held.go)
//	index  "session/<id>/parts"     member "<part number, 5 digits>", value partEntry; the
//	                                parts of a parallel session that landed (parts.go). Dropped
//	                                with the record, after it
//	lock   "session/<id>"           held for the length of one append, abort or purge, and
//	                                while a parallel session starts or completes
//	lock   "session/<id>/part/<n>"  held while part n of a parallel session is written
//
// Layout 0 (before metastore/migrate's layout 1) named the index
// "sessions/expiry".
//
// In the blob backend a session owns either a multipart upload of its final
// object (registry.ObjectKey, S3; started by its first part, layout 2, or
// by its first parallel part) or a staging file (filesystem). Neither is
// visible at the key until the session completes, so an existing file is
// replaced atomically when, and only when, the new one is whole.

const (
	expiryIndex = "session/expiry"
	heldIndex   = "session/held"
)

func recordKey(id string) string { return "session/" + id }
func tailKey(id string, k int) string {
	return "session/" + id + "/tail/" + strconv.Itoa(k)
}
func lockName(id string) string   { return "session/" + id }
func partsIndex(id string) string { return "session/" + id + "/parts" }
func partMember(n int) string     { return fmt.Sprintf("%05d", n) }
func partLockName(id string, n int) string {
	return "session/" + id + "/part/" + strconv.Itoa(n)
}
func expiryMember(at time.Time, id string) string {
	return due.Member(at, id)
}
