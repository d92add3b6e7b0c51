package masking

// Table is one index table of a sparse stage (docs/bundle.md, "sparse"
// mode): over the exit mask nearest-resized to Height×Width, either the
// computed pixels (Band false) or the frozen pixels within Chebyshev
// distance Radius of a computed one (Band true), as ascending flat
// row-major indices.
type Table struct {
	Height, Width int
	Band          bool
	Radius        int
}

// Tables builds a stage's index tables from the exit mask every frame. Each
// distinct resolution is resized once and shared by its tables; all buffers
// are allocated by NewTables, so Build allocates nothing. A Tables is used by
// one goroutine.
type Tables struct {
	h, w   int
	specs  []Table
	grid   []int // spec → its entry in grids
	grids  []grid
	counts []int32 // column counts of the vertical dilation pass
	rows   []uint8 // the horizontally dilated mask
}

// grid is the exit mask resized to one resolution.
type grid struct {
	h, w int
	mask []uint8
	src  []int // source column of each destination column
}

// NewTables makes the builder of the given tables for an h×w exit mask.
func NewTables(h, w int, specs []Table) *Tables {
	t := &Tables{h: h, w: w, specs: specs, grid: make([]int, len(specs))}
	most := 0
	for k, s := range specs {
		g := -1
		for j, gr := range t.grids {
			if gr.h == s.Height && gr.w == s.Width {
				g = j
			}
		}
		if g < 0 {
			g = len(t.grids)
			gr := grid{h: s.Height, w: s.Width, mask: make([]uint8, s.Height*s.Width), src: make([]int, s.Width)}
			sx := float32(w) / float32(s.Width)
			for x := range gr.src {
				gr.src[x] = nearest(x, sx, w)
			}
			t.grids = append(t.grids, gr)
		}
		t.grid[k] = g
		most = max(most, s.Height*s.Width)
	}
	t.rows = make([]uint8, most)
	t.counts = make([]int32, most)
	return t
}

// Build writes table k of the exit mask (h×w, 1 = compute) into dst[k],
// which holds at least Height·Width values, and its length into lens[k].
func (t *Tables) Build(mask []uint8, dst [][]int64, lens []int) {
	for j := range t.grids {
		t.resize(&t.grids[j], mask)
	}
	for k, s := range t.specs {
		g := &t.grids[t.grid[k]]
		if s.Band {
			lens[k] = t.band(g, s.Radius, dst[k])
		} else {
			lens[k] = computed(g, dst[k])
		}
	}
}

// resize nearest-resizes mask to g with PyTorch's rule (ResizedFraction).
func (t *Tables) resize(g *grid, mask []uint8) {
	sy := float32(t.h) / float32(g.h)
	for y := 0; y < g.h; y++ {
		src := mask[nearest(y, sy, t.h)*t.w:][:t.w]
		dst := g.mask[y*g.w:][:g.w]
		for x, sx := range g.src {
			dst[x] = src[sx]
		}
	}
}

// computed lists the computed pixels of g into dst and returns how many.
func computed(g *grid, dst []int64) int {
	n := 0
	dst = dst[:len(g.mask)]
	for p, m := range g.mask {
		if m != 0 {
			dst[n] = int64(p)
			n++
		}
	}
	return n
}

// band lists into dst the frozen pixels of g within Chebyshev distance r of
// a computed one and returns how many: a separable dilation, rows then
// columns, each a running count, so the cost is O(h·w) whatever r.
func (t *Tables) band(g *grid, r int, dst []int64) int {
	h, w := g.h, g.w
	rows := t.rows[:h*w]
	for y := 0; y < h; y++ {
		in := g.mask[y*w:][:w]
		out := rows[y*w:][:w]
		ones := 0 // computed pixels in in[x-r .. x+r]
		for x := 0; x < min(r, w); x++ {
			ones += int(in[x])
		}
		for x := 0; x < w; x++ {
			if x+r < w {
				ones += int(in[x+r])
			}
			if x-r-1 >= 0 {
				ones -= int(in[x-r-1])
			}
			out[x] = b2u(ones > 0)
		}
	}
	counts := t.counts[:w] // dilated rows y-r .. y+r with a computed pixel
	clear(counts)
	for y := 0; y < min(r, h); y++ {
		addRow(counts, rows[y*w:][:w], 1)
	}
	n := 0
	for y := 0; y < h; y++ {
		if y+r < h {
			addRow(counts, rows[(y+r)*w:][:w], 1)
		}
		if y-r-1 >= 0 {
			addRow(counts, rows[(y-r-1)*w:][:w], -1)
		}
		m := g.mask[y*w:][:w]
		for x, c := range counts {
			if c > 0 && m[x] == 0 {
				dst[n] = int64(y*w + x)
				n++
			}
		}
	}
	return n
}

func addRow(counts []int32, row []uint8, sign int32) {
	row = row[:len(counts)]
	for x, v := range row {
		counts[x] += sign * int32(v)
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
