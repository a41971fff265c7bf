package thresholds

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/natstest"
)

// TestRebuildDoesNotRepublish runs the runner's online rebuild: the fresh
// model's outbox holds every crossing again, but PrepareSwap marks them
// published, so no alert is sent twice and the answers stay the same.
func TestRebuildDoesNotRepublish(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	opts := Options{PoolAllowances: map[string]int64{droamPool: 50 << 30}}
	s := startService(t, js, filepath.Join(t.TempDir(), "thresholds.db"), opts)
	last := publishEvents(t, js, allExamples(t), true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.r.WaitFor(ctx, last); err != nil {
		t.Fatal(err)
	}
	waitOutboxDrained(t, s)
	before := readAlerts(t, js)
	var sim SIMView
	getJSON(t, s.srv.URL+"/v1/sims/"+droamPrepaid+"/thresholds", &sim)
	oldDB := s.r.DB()

	if err := s.r.StartRebuild(); err != nil {
		t.Fatal(err)
	}
	for s.r.DB() == oldDB {
		st, err := s.r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Rebuild.State == "failed" || ctx.Err() != nil {
			t.Fatalf("rebuild: %+v %v", st.Rebuild, ctx.Err())
		}
		time.Sleep(5 * time.Millisecond) // poll interval only
	}
	rows, err := pending(ctx, s.r.DB().Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Fatalf("rebuilt outbox has %d pending rows", len(rows))
	}
	if err := s.pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := readAlerts(t, js)
	if len(after) != len(before) || len(after) != 14 {
		t.Fatalf("alerts before rebuild %d, after %d", len(before), len(after))
	}
	var sim2 SIMView
	getJSON(t, s.srv.URL+"/v1/sims/"+droamPrepaid+"/thresholds", &sim2)
	if jsonOf(t, sim) != jsonOf(t, sim2) {
		t.Errorf("rebuild changed the answer:\n%s\nwas\n%s", jsonOf(t, sim2), jsonOf(t, sim))
	}
}
