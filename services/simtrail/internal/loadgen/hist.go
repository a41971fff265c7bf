package loadgen

import (
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets (1/64 relative
// precision, like HDR histograms) so a long run needs constant memory. The
// zero value is ready; it is not safe for concurrent use.
type Histogram struct {
	counts [64 * 64]uint64
	n      uint64
	max    time.Duration
	sum    time.Duration
}

const subBits = 6 // 64 sub-buckets per power of two

func bucketOf(ns uint64) int {
	if ns < 1<<subBits {
		return int(ns)
	}
	exp := bits.Len64(ns) - subBits // ≥ 1
	return exp<<subBits | int(ns>>(exp-1)&(1<<subBits-1))
}

// lowerBound is the smallest value of bucket i; its upper bound is the
// next bucket's lower bound.
func lowerBound(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	exp := i >> subBits
	return (1<<subBits | uint64(i&(1<<subBits-1))) << (exp - 1)
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := bucketOf(uint64(d))
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

// Merge adds o's observations.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest observation.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean is the average observation.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the q-quantile (0 < q ≤ 1), as the midpoint of its
// bucket, never above Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}
