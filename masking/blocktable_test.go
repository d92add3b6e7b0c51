package masking

import (
	"slices"
	"testing"
)

func TestBlockTable(t *testing.T) {
	// 4×6 exit map, cells of 2: a 2×3 grid, G = 6.
	tab := NewBlockTable(4, 6, 2, []int{2, 4, 8})
	mask := make([]uint8, 24)
	mask[0*6+1] = 1 // cell 0
	mask[3*6+5] = 1 // cell 5
	if n := tab.Build(mask); n != 2 || tab.Fraction() != 2.0/6 {
		t.Fatalf("got %d active (%v)", n, tab.Fraction())
	}
	bucket, ok := tab.Bucket()
	if !ok || bucket != 2 {
		t.Fatalf("bucket %d %v, want 2", bucket, ok)
	}
	ids, neigh := make([]int64, 4), make([]int64, 32)
	tab.Write(ids, neigh, 4)
	if !slices.Equal(ids, []int64{0, 5, 6, 6}) {
		t.Errorf("ids %v, want [0 5 6 6]", ids)
	}
	// Cell 0 (row 0, col 0): only (0,+1)=1, (+1,0)=3, (+1,+1)=4 exist.
	if got := neigh[0:8]; !slices.Equal(got, []int64{6, 6, 6, 6, 1, 6, 3, 4}) {
		t.Errorf("neighbours of cell 0: %v", got)
	}
	// Cell 5 (row 1, col 2): (−1,−1)=1, (−1,0)=2, (0,−1)=4.
	if got := neigh[8:16]; !slices.Equal(got, []int64{1, 2, 6, 4, 6, 6, 6, 6}) {
		t.Errorf("neighbours of cell 5: %v", got)
	}
	if got := neigh[16:32]; slices.ContainsFunc(got, func(v int64) bool { return v != 6 }) {
		t.Errorf("padding rows must be all sentinel: %v", got)
	}
	wide := make([]float32, 24)
	tab.Widen(wide)
	ones := 0
	for p, v := range wide {
		if v == 1 {
			ones++
			y, x := p/6, p%6
			if !(y < 2 && x < 2) && !(y >= 2 && x >= 4) {
				t.Errorf("pixel (%d,%d) widened outside cells 0 and 5", y, x)
			}
		}
	}
	if ones != 8 {
		t.Errorf("block mask has %d ones, want 8", ones)
	}
	Fill(mask)
	tab.Build(mask)
	if b, ok := tab.Bucket(); !ok || b != 8 {
		t.Errorf("6 active cells: bucket %d %v, want 8", b, ok)
	}
	small := NewBlockTable(4, 6, 2, []int{2, 4})
	small.Build(mask)
	if _, ok := small.Bucket(); ok {
		t.Error("6 active cells fit a bucket of at most 4")
	}
	if n := testing.AllocsPerRun(10, func() { tab.Build(mask); tab.Write(ids, neigh, 4); tab.Widen(wide) }); n != 0 {
		t.Errorf("allocates %v", n)
	}
}
