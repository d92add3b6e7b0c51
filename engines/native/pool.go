//go:build cgo

package native

import "sync"

// job is work split into parts that write disjoint outputs.
type job interface {
	// do runs part of parts (0 ≤ part < parts).
	do(part, parts int)
}

// pool runs a job's parts on a fixed set of goroutines: the caller runs part
// 0 and worker k part k, and run returns when all are done. It starts its
// workers once and neither allocates nor spawns per job. One job at a time.
type pool struct {
	wake  []chan struct{} // worker k-1 waits on wake[k-1]
	done  sync.WaitGroup
	job   job
	parts int
	// macGrain and elementGrain are the work per part below which a job is
	// not split further: waking a worker costs about as much.
	macGrain, elementGrain int
}

// Default grains: multiply-adds of a convolution, floats read or written by
// the other passes; each about 50-100 µs of one core's work, so that a part
// outweighs waking a worker even on a busy machine (the shipped demo's
// stages, 128×256, ran 1.2-1.4× faster at 2 threads with these than with
// grains 16 times smaller: BenchmarkStages, 2 cores under a load of 1.4).
const (
	macGrain     = 1 << 20
	elementGrain = 1 << 18
)

// newPool starts threads-1 workers.
func newPool(threads int) *pool {
	p := &pool{macGrain: macGrain, elementGrain: elementGrain}
	for k := 1; k < threads; k++ {
		c := make(chan struct{})
		p.wake = append(p.wake, c)
		go p.work(k, c)
	}
	return p
}

// size is the most parts a job can run in at once.
func (p *pool) size() int { return len(p.wake) + 1 }

// macParts is how many parts to split a convolution of macs
// multiply-adds into.
func (p *pool) macParts(macs int) int { return min(max(macs/p.macGrain, 1), p.size()) }

// elementParts is how many parts to split a pass over n floats into.
func (p *pool) elementParts(n int) int { return min(max(n/p.elementGrain, 1), p.size()) }

func (p *pool) work(part int, wake <-chan struct{}) {
	for range wake {
		if p.job == nil { // stop
			p.done.Done()
			return
		}
		p.job.do(part, p.parts)
		p.done.Done()
	}
}

// run runs j in parts (1 to size) and waits for all of them.
func (p *pool) run(j job, parts int) {
	if parts <= 1 {
		j.do(0, 1)
		return
	}
	p.job, p.parts = j, parts
	p.done.Add(parts - 1)
	for k := 1; k < parts; k++ {
		p.wake[k-1] <- struct{}{}
	}
	j.do(0, parts)
	p.done.Wait()
	p.job = nil
}

// stop stops the workers and waits for them to return.
func (p *pool) stop() {
	p.job = nil
	p.done.Add(len(p.wake))
	for _, c := range p.wake {
		c <- struct{}{}
	}
	p.done.Wait()
	p.wake = nil
}
