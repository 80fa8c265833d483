//go:build !unix

package fsblob

import "io/fs"

// inode is 0 where the platform has no inode numbers; the ETag alone then
// identifies a committed object.
func inode(fs.FileInfo) uint64 { return 0 }
