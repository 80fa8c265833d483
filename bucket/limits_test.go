package bucket

import "testing"

func TestLimits(t *testing.T) {
	if MaxObjectLen != MaxPartSize*MaxParts || MinPartSize > MaxPartSize || MaxPutSize > MaxObjectLen {
		t.Fatalf("inconsistent limits: min %d max %d parts %d put %d object %d", MinPartSize, MaxPartSize, MaxParts, MaxPutSize, MaxObjectLen)
	}
}

func TestPartSizeFor(t *testing.T) {
	cases := []struct {
		size, want int64
		err        bool
	}{
		{-1, 0, true},
		{0, MinPartSize, false},
		{1, MinPartSize, false},
		{MinPartSize, MinPartSize, false},
		{MinPartSize * MaxParts, MinPartSize, false},
		{MinPartSize*MaxParts + 1, MinPartSize + 1, false},
		{MaxObjectLen - 1, MaxPartSize, false},
		{MaxObjectLen, MaxPartSize, false},
		{MaxObjectLen + 1, 0, true},
	}
	for _, tc := range cases {
		got, err := PartSizeFor(tc.size)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("PartSizeFor(%d) = %d, %v; want %d (err %v)", tc.size, got, err, tc.want, tc.err)
		}
		if err == nil && (got*MaxParts < tc.size || got > MaxPartSize || got < MinPartSize) {
			t.Errorf("PartSizeFor(%d) = %d cannot hold the file in %d parts", tc.size, got, MaxParts)
		}
		// The smallest such size: one byte less would not fit.
		if err == nil && got > MinPartSize && (got-1)*MaxParts >= tc.size {
			t.Errorf("PartSizeFor(%d) = %d is not the smallest", tc.size, got)
		}
	}
}
