package bench

import (
	"testing"
	"time"
)

// TestCPUSpent: a phase's figures sum its entries, and steal is the share
// of the machine's jiffies, unknown once a mark could not read it.
func TestCPUSpent(t *testing.T) {
	t0 := time.Unix(100, 0)
	mark := func(sec int, proc time.Duration, steal, total float64) cpuMark {
		return cpuMark{at: t0.Add(time.Duration(sec) * time.Second), process: proc, steal: steal, total: total, stealReadable: true}
	}
	var c cpuSpent
	c.add(mark(0, 0, 10, 1000), mark(2, 3*time.Second, 30, 1400))             // 2 s, 3 s CPU, 20 of 400
	c.add(mark(5, 4*time.Second, 30, 1600), mark(7, 5*time.Second, 90, 2000)) // 2 s, 1 s CPU, 60 of 400
	got := c.figures()
	if got.Wall != 4*time.Second || got.Process != 4*time.Second || got.Cores() != 1 || got.StealPercent != 10 {
		t.Errorf("figures %+v, cores %.2f; want 4 s, 4 s, 1 core, 10 %%", got, got.Cores())
	}
	unknown := mark(9, 6*time.Second, 0, 0)
	unknown.stealReadable = false
	c.add(mark(8, 5*time.Second, 90, 2000), unknown)
	if got := c.figures(); got.StealPercent != -1 || got.Wall != 5*time.Second {
		t.Errorf("after an unreadable mark: %+v; want steal -1, 5 s", got)
	}
	if (PhaseCPU{}).Cores() != 0 {
		t.Error("a phase of no time has no cores")
	}
}
