package bucket

import "fmt"

// PartSizeFor is the smallest part size that fits a file of size bytes into
// MaxParts parts: at least MinPartSize and, for any size up to MaxObjectLen,
// at most MaxPartSize. Sizes outside 0..MaxObjectLen are an error.
func PartSizeFor(size int64) (int64, error) {
	if size < 0 || size > MaxObjectLen {
		return 0, fmt.Errorf("size %d is outside 0..%d, the most %d parts of %d bytes can hold", size, MaxObjectLen, MaxParts, MaxPartSize)
	}
	ps := (size + MaxParts - 1) / MaxParts
	return max(ps, MinPartSize), nil
}
