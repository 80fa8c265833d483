package openai

// Persistent layout of the adapter in the metadata store (besides the
// registry's), the one place its names are written (docs/storage-layout.md
// maps every package's). Every name starts with "openai/"; the vector
// stores' "openai/vs/..." names are package vectorstore's.
//
//	index  "openai/expiry"             a due list (metastore/due): member "<due unix ms, 16 digits>/
//	                                   <file or upload id>", value empty, or {"attempts":n} once
//	                                   the purger failed on it
//	record "openai/upload/<id>"        JSON uploadRecord
//	index  "openai/upload/<id>/parts"  member <part id>, value part (JSON)
//	lock   "openai/upload/<id>"        serialises the changes to one Upload
//
// Upload ids are "upload_" and hex, so none is "expiry" or "vs". A file's
// bytes are the native file "<file id>/<filename>" in Config.Bucket, and an
// Upload's parts native files in Config.UploadsBucket.

const expiryIndex = "openai/expiry"

func uploadKey(id string) string  { return "openai/upload/" + id }
func partsIndex(id string) string { return "openai/upload/" + id + "/parts" }
func uploadLock(id string) string { return "openai/upload/" + id }
