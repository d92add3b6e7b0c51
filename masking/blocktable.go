package masking

// BlockTable turns a pixel mask into the inputs of a blocks stage
// (docs/bundle.md): the active cell ids padded to a bucket, their
// neighbour table, and the block mask. Its buffers are allocated once.
type BlockTable struct {
	size, h, w, rows, cols int
	buckets                []int
	active                 []int32
	n                      int
}

// NewBlockTable makes the table of an h×w exit map cut into size×size
// cells, for graphs run with the given ascending bucket sizes.
func NewBlockTable(h, w, size int, buckets []int) *BlockTable {
	t := &BlockTable{size: size, h: h, w: w, rows: h / size, cols: w / size, buckets: buckets}
	t.active = make([]int32, t.rows*t.cols)
	return t
}

// Cells is the number of cells, G; it is also the sentinel id.
func (t *BlockTable) Cells() int { return t.rows * t.cols }

// Build finds the active cells of mask (1 = compute) and returns how many
// there are.
func (t *BlockTable) Build(mask []uint8) int {
	t.n = ActiveBlocks(t.active, mask, t.h, t.w, t.size)
	return t.n
}

// Bucket is the smallest bucket holding the active cells of the last Build;
// ok is false when none does.
func (t *BlockTable) Bucket() (bucket int, ok bool) {
	for _, b := range t.buckets {
		if b >= t.n {
			return b, true
		}
	}
	return 0, false
}

// neighbourOffsets are the (row, column) offsets of a cell's eight
// neighbours, in the contract's order.
var neighbourOffsets = [8][2]int{{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 1}, {1, -1}, {1, 0}, {1, 1}}

// Write fills ids ([bucket]) and neighbours ([bucket·8]) for the last
// Build: active ids then the sentinel G, and each active cell's neighbours
// (G outside the grid; all G for padding entries).
func (t *BlockTable) Write(ids, neighbours []int64, bucket int) {
	g := int64(t.Cells())
	for k := 0; k < bucket; k++ {
		row := neighbours[8*k : 8*k+8]
		if k >= t.n {
			ids[k] = g
			for j := range row {
				row[j] = g
			}
			continue
		}
		id := int(t.active[k])
		ids[k] = int64(id)
		r, c := id/t.cols, id%t.cols
		for j, o := range neighbourOffsets {
			nr, nc := r+o[0], c+o[1]
			if nr < 0 || nr >= t.rows || nc < 0 || nc >= t.cols {
				row[j] = g
			} else {
				row[j] = int64(nr*t.cols + nc)
			}
		}
	}
}

// Widen writes the block mask of the last Build into dst (h×w float32):
// 1 in every pixel of an active cell, 0 elsewhere.
func (t *BlockTable) Widen(dst []float32) {
	clear(dst[:t.h*t.w])
	for _, id := range t.active[:t.n] {
		r, c := int(id)/t.cols, int(id)%t.cols
		for y := r * t.size; y < (r+1)*t.size; y++ {
			row := dst[y*t.w+c*t.size : y*t.w+(c+1)*t.size]
			for x := range row {
				row[x] = 1
			}
		}
	}
}

// Fraction is the fraction of cells active after the last Build.
func (t *BlockTable) Fraction() float64 { return float64(t.n) / float64(t.Cells()) }
