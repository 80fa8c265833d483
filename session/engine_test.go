package session

import (
	"fmt"
	"testing"

	"github.com/ferryhq/ferry/bucket"
)

func TestSplitRun(t *testing.T) {
	const max = bucket.MaxPartSize
	cases := []struct {
		n    int64
		want []int64
	}{
		{0, []int64{0}},
		{1, []int64{1}},
		{bucket.MinPartSize, []int64{bucket.MinPartSize}},
		{max, []int64{max}},
		{max + 1, []int64{max/2 + 1, max / 2}},
		{2 * max, []int64{max, max}},
		{2*max + 1, []int64{(2*max+1)/3 + 1, (2*max+1)/3 + 1, (2*max + 1) / 3}}, // remainder 2
	}
	for _, tc := range cases {
		got := splitRun(tc.n)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("splitRun(%d) = %v, want %v", tc.n, got, tc.want)
		}
		var sum int64
		for _, p := range got {
			sum += p
			if p > max {
				t.Errorf("splitRun(%d) has a part of %d > MaxPartSize", tc.n, p)
			}
		}
		if sum != tc.n {
			t.Errorf("splitRun(%d) sums to %d", tc.n, sum)
		}
	}
}

// The part size chosen at session creation keeps any file within MaxParts,
// whatever chunk sizes the client sends.
func TestPartBudget(t *testing.T) {
	for _, size := range []int64{bucket.MinPartSize, bucket.MinPartSize * bucket.MaxParts, bucket.MinPartSize*bucket.MaxParts + 1, bucket.MaxObjectLen} {
		ps, err := bucket.PartSizeFor(size)
		if err != nil {
			t.Fatal(err)
		}
		// Worst case: every part but the last is exactly ps.
		if parts := (size + ps - 1) / ps; parts > bucket.MaxParts {
			t.Errorf("size %d with part size %d needs %d parts", size, ps, parts)
		}
	}
}
