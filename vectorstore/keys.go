package vectorstore

// Persistent layout of the vector stores in the metadata store, the one
// place its names are written (docs/storage-layout.md maps every package's).
// Every instance sees the same state; nothing that matters lives only in
// memory. C is a collection: a store "openai/vs/<vs>"
// or one of its batches "openai/vs/<vs>/batch/<vsfb>".
//
//	index  "openai/vs"                    member <vs id>           every live store, ids in creation order
//	record "openai/vs/<vs>"               JSON storeRecord          name, metadata, expiry, and the cached
//	                                                                file_counts and usage_bytes
//	record "openai/vs/<vs>/file/<file>"   JSON fileRecord           the file in the store: the truth
//	record "openai/vs/<vs>/chunks/<file>" JSON chunksRecord         its chunk texts (and vectors), once completed
//	record "openai/vs/<vs>/batch/<vsfb>"  JSON batchRecord
//	index  "openai/vs/<vs>/batches"       member <vsfb id>
//	index  "C/files"                      member <order>            value file id: attach order
//	index  "C/status/<status>"            member <order>            value fileSummary: the same, by status
//	index  "openai/vs/<vs>/usage"         member <order>            value usage_bytes (decimal) of a completed file
//	index  "openai/vs/byfile/<file>"      member <vs id>            the stores a file is in
//	index  "openai/vs/jobs"               member <job id>           value job: the processing queue
//	index  "openai/vs/deleted"            member <vs id>            stores whose cleanup has not finished
//	index  "openai/vs/forget"             member <file id>          files gone from the registry whose
//	                                                                detaching has not finished
//	lock   "openai/vs/<vs>/file/<file>"   serialises every change to one file in a store
//	lock   "openai/vs/job/<job id>"       the instance processing a job
//
// <order> is "<12 hex digits of attach ms><4 hex sequence>/<file id>", so
// listing an index lists files in attach order, and a file id cursor maps
// to its member through the file record.

const (
	storesIndex  = "openai/vs"
	jobsIndex    = "openai/vs/jobs"
	deletedIndex = "openai/vs/deleted"
	forgetIndex  = "openai/vs/forget"
)

func storeKey(vs string) string              { return "openai/vs/" + vs }
func fileKey(vs, file string) string         { return "openai/vs/" + vs + "/file/" + file }
func chunksKey(vs, file string) string       { return "openai/vs/" + vs + "/chunks/" + file }
func batchKey(vs, batch string) string       { return "openai/vs/" + vs + "/batch/" + batch }
func batchesIndex(vs string) string          { return "openai/vs/" + vs + "/batches" }
func byFileIndex(file string) string         { return "openai/vs/byfile/" + file }
func usageIndex(vs string) string            { return "openai/vs/" + vs + "/usage" }
func filesIndexOf(coll string) string        { return coll + "/files" }
func statusIndex(coll, status string) string { return coll + "/status/" + status }
func fileLockName(vs, file string) string    { return "openai/vs/" + vs + "/file/" + file }
func jobLockName(job string) string          { return "openai/vs/job/" + job }

// statusIndexes are a collection's status indexes, one per status.
func statusIndexes(coll string) []string {
	out := make([]string, len(fileStatuses))
	for i, st := range fileStatuses {
		out[i] = statusIndex(coll, st)
	}
	return out
}
