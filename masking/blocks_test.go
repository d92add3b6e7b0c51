package masking

import (
	"slices"
	"testing"
)

func TestActiveBlocks(t *testing.T) {
	// 5×7 mask, blocks of 2: a 3×4 grid with a ragged last row and column.
	mask := make([]uint8, 5*7)
	set := func(y, x int) { mask[y*7+x] = 1 }
	set(0, 0) // cell 0
	set(3, 3) // cell (1,1) = 5
	set(4, 6) // cell (2,3) = 11, the ragged corner
	ids := make([]int32, Cells(5, 7, 2))
	n := ActiveBlocks(ids, mask, 5, 7, 2)
	if got := ids[:n]; !slices.Equal(got, []int32{0, 5, 11}) || len(ids) != 12 {
		t.Errorf("got %v of %d cells, want [0 5 11] of 12", got, len(ids))
	}
	clear(mask)
	if n := ActiveBlocks(ids, mask, 5, 7, 2); n != 0 {
		t.Errorf("empty mask: %d active", n)
	}
	Fill(mask)
	if n := ActiveBlocks(ids, mask, 5, 7, 2); n != 12 {
		t.Errorf("full mask: %d active, want 12", n)
	}
	if n := testing.AllocsPerRun(10, func() { ActiveBlocks(ids, mask, 5, 7, 2) }); n != 0 {
		t.Errorf("allocates %v", n)
	}
}
