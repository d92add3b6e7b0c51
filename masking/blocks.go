package masking

// ActiveBlocks partitions the h×w mask into block×block cells (the last row
// and column of cells may be smaller) and writes into ids the row-major ids
// of the cells holding at least one pixel to compute, in order. ids must
// hold (⌈h/block⌉·⌈w/block⌉) values; it returns how many it wrote. This is
// the unit of work of block-sparse execution: its count over the number of
// cells bounds the savings a block engine can reach.
func ActiveBlocks(ids []int32, mask []uint8, h, w, block int) int {
	gw := (w + block - 1) / block
	n := 0
	for by := 0; by*block < h; by++ {
		y1 := min((by+1)*block, h)
		for bx := 0; bx*block < w; bx++ {
			x0, x1 := bx*block, min((bx+1)*block, w)
			if anyRow(mask, w, by*block, y1, x0, x1) {
				ids[n] = int32(by*gw + bx)
				n++
			}
		}
	}
	return n
}

// Cells is the number of block×block cells of an h×w map.
func Cells(h, w, block int) int {
	return ((h + block - 1) / block) * ((w + block - 1) / block)
}

func anyRow(mask []uint8, w, y0, y1, x0, x1 int) bool {
	for y := y0; y < y1; y++ {
		for _, m := range mask[y*w+x0 : y*w+x1] {
			if m != 0 {
				return true
			}
		}
	}
	return false
}
