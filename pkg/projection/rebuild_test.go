package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
)

// gated is the counter projector with a gate: applying the event at seq
// blockSeq waits until the gate opens. The live runner applies that event
// before the rebuild starts, so only the rebuild waits, which holds it in
// "running" for as long as the test needs.
type gated struct {
	counter
	blockSeq uint64
	gate     chan struct{}
	armed    atomic.Bool
	blocked  atomic.Bool
}

func (g *gated) Migrations() fs.FS { return g.counter.Migrations() }
func (g *gated) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) error {
	if m.Seq == g.blockSeq && g.armed.Load() {
		g.blocked.Store(true)
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.counter.Apply(ctx, tx, m)
}

func rows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM seen`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOnlineRebuild(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	dir := t.TempDir()
	var last uint64
	for i := range 300 {
		last = publish(t, js, "89000000000000000001", i)
	}
	g := &gated{blockSeq: 150, gate: make(chan struct{})}
	r, stop := startRunner(t, js, projection.CurrentPath(dir, "counter"), g)
	defer stop()
	waitFor(t, r, last)

	g.armed.Store(true)
	if err := r.StartRebuild(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !g.blocked.Load() {
		if time.Now().After(deadline) {
			t.Fatal("rebuild never reached the gated event")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.StartRebuild(); !errors.Is(err, projection.ErrRebuildRunning) {
		t.Errorf("second rebuild: %v, want ErrRebuildRunning", err)
	}
	// The live model keeps answering and applying during the rebuild.
	if n := rows(t, r.DB().Reader); n != 300 {
		t.Errorf("live rows during rebuild = %d", n)
	}
	for i := 300; i < 400; i++ {
		last = publish(t, js, "89000000000000000001", i)
	}
	waitFor(t, r, last)
	old := r.DB().Path
	close(g.gate)

	for {
		st, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Rebuild.State == "done" {
			break
		}
		if st.Rebuild.State == "failed" || time.Now().After(deadline.Add(20*time.Second)) {
			t.Fatalf("rebuild state %+v", st.Rebuild)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.DB().Path == old {
		t.Fatal("read model was not swapped")
	}
	if projection.CurrentPath(dir, "counter") != r.DB().Path {
		t.Errorf("current pointer %s, serving %s", projection.CurrentPath(dir, "counter"), r.DB().Path)
	}
	if n := rows(t, r.DB().Reader); n != 400 {
		t.Errorf("rebuilt rows = %d, want 400", n)
	}
	// Live traffic after the swap lands in the new model.
	last = publish(t, js, "89000000000000000002", 0)
	waitFor(t, r, last)
	if n := rows(t, r.DB().Reader); n != 401 {
		t.Errorf("rows after swap = %d, want 401", n)
	}
}

// TestBuildUntil: a model built "as of" a time equals one built from only
// the events stored up to it.
func TestBuildUntil(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	var cutSeq uint64
	for i := range 50 {
		cutSeq = publish(t, js, "89000000000000000001", i)
	}
	st, _ := js.Stream(context.Background(), events.StreamName)
	m, err := st.GetMsg(context.Background(), cutSeq)
	if err != nil {
		t.Fatal(err)
	}
	until := m.Time
	// Everything after must be stored strictly later than the cut.
	for !time.Now().After(until) {
		runtime.Gosched()
	}
	for i := 50; i < 80; i++ {
		publish(t, js, "89000000000000000001", i)
	}
	ctx := context.Background()
	p := &counter{}
	asOf := openModel(t, p, "asof.db")
	pos, err := projection.Build(ctx, js, events.StreamName, p, asOf, projection.BuildOptions{Until: until, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	upTo := openModel(t, p, "upto.db")
	if _, err := projection.Build(ctx, js, events.StreamName, p, upTo, projection.BuildOptions{UpTo: cutSeq}); err != nil {
		t.Fatal(err)
	}
	if pos != cutSeq {
		t.Errorf("as-of build stopped at %d, want %d", pos, cutSeq)
	}
	if a, b := dump(t, asOf.Reader), dump(t, upTo.Reader); a != b || rows(t, asOf.Reader) != 50 {
		t.Errorf("as-of model differs from the model of the first 50 events")
	}
}

func dump(t *testing.T, db *sql.DB) string {
	t.Helper()
	rs, err := db.Query(`SELECT event_id, seq FROM seen ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := ""
	for rs.Next() {
		var id string
		var seq int
		rs.Scan(&id, &seq)
		out += id + "\n"
	}
	return out
}
