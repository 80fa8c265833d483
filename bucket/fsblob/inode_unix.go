//go:build unix

package fsblob

import (
	"io/fs"
	"syscall"
)

// inode is the file's inode number, which a rename keeps: with the ETag it
// tells one object from another of the same size and modification time.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
