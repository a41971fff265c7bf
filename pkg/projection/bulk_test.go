package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// indexed is counter with a secondary index on seq that Build may defer;
// it records whether the index existed while events were applied.
type indexed struct {
	counter
	sawIndex, sawNoIndex bool
}

const seqIndex = `CREATE INDEX IF NOT EXISTS seen_seq ON seen(seq)`

func (x *indexed) Migrations() fs.FS {
	return fstest.MapFS{"00001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE seen (event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
` + seqIndex + `;
-- +goose Down
DROP TABLE seen;
`)}}
}

func (x *indexed) DeferredIndexes() []projection.DeferredIndex {
	return []projection.DeferredIndex{{Name: "seen_seq", Create: seqIndex}}
}

func (x *indexed) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'seen_seq'`).Scan(&n); err != nil {
		return err
	}
	x.sawIndex = x.sawIndex || n == 1
	x.sawNoIndex = x.sawNoIndex || n == 0
	return x.counter.Apply(ctx, tx, m)
}

func hasIndex(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'seen_seq'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// TestBuildDefersIndexes: a build into an empty read model runs without
// the projector's deferred indexes and creates them at the end, also when
// it is cancelled; a build that resumes a filled model keeps them. (Checks
// go through the writer: a reader connection would stop the next build from
// leaving WAL mode.)
func TestBuildDefersIndexes(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	var last uint64
	for i := range 40 {
		last = publish(t, js, "89000000000000000001", i)
	}
	ctx := context.Background()
	p := &indexed{}
	db := openModel(t, p, "idx.db")
	if _, err := projection.Build(ctx, js, events.StreamName, p, db, projection.BuildOptions{UpTo: 20, BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
	if p.sawIndex || !p.sawNoIndex || !hasIndex(t, db.Writer) {
		t.Errorf("empty model: applied with index %v, without %v; index after build %v", p.sawIndex, p.sawNoIndex, hasIndex(t, db.Writer))
	}
	*p = indexed{}
	if _, err := projection.Build(ctx, js, events.StreamName, p, db, projection.BuildOptions{StartSeq: 21, UpTo: last}); err != nil {
		t.Fatal(err)
	}
	if !p.sawIndex || p.sawNoIndex || rows(t, db.Writer) != 40 {
		t.Errorf("resumed model: applied with index %v, without %v; %d rows", p.sawIndex, p.sawNoIndex, rows(t, db.Writer))
	}

	cancelled := openModel(t, p, "cancelled.db")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := projection.Build(cctx, js, events.StreamName, p, cancelled, projection.BuildOptions{}); err == nil {
		t.Fatal("a cancelled build reported success")
	}
	if !hasIndex(t, cancelled.Writer) {
		t.Error("a cancelled build left the model without its deferred index")
	}
}

// TestBuildUpToBeyondLog: a build told to go further than the log reaches
// stops at the last stored event; one whose range holds no event at all
// (only a derived alert) ends after the server reports nothing pending.
func TestBuildUpToBeyondLog(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	var last uint64
	for i := range 5 {
		last = publish(t, js, "89000000000000000001", i)
	}
	ctx := context.Background()
	p := &counter{}
	db := openModel(t, p, "beyond.db")
	pos, err := projection.Build(ctx, js, events.StreamName, p, db, projection.BuildOptions{UpTo: last + 10})
	if err != nil || pos != last || rows(t, db.Writer) != 5 {
		t.Fatalf("build up to %d of a %d-event log: pos %d, %d rows, err %v", last+10, last, pos, rows(t, db.Writer), err)
	}
	ack, err := js.Publish(ctx, events.AlertSubject("threshold", simtrailv1.Provider_PROVIDER_ROAMIFY, "89000000000000000001"), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	empty := openModel(t, p, "empty.db")
	pos, err = projection.Build(ctx, js, events.StreamName, p, empty, projection.BuildOptions{StartSeq: ack.Sequence})
	if err != nil || pos != 0 || rows(t, empty.Writer) != 0 {
		t.Fatalf("build of a range without events: pos %d, %d rows, err %v", pos, rows(t, empty.Writer), err)
	}
}

// openModel opens a fresh read model of p in t's temporary directory,
// closed when t ends.
func openModel(t *testing.T, p projection.Projector, name string) *projection.DB {
	t.Helper()
	db, err := projection.Open(context.Background(), filepath.Join(t.TempDir(), name), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// failAt is the counter projector failing, as a full disk does, at one
// stream sequence.
type failAt struct {
	counter
	seq uint64
}

func (f *failAt) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) error {
	if m.Seq == f.seq {
		return fmt.Errorf("insert: %w", sqlite3.Error{Code: sqlite3.ErrFull})
	}
	return f.counter.Apply(ctx, tx, m)
}

// TestBuildPipelined: Build reads and decodes the next batch while it
// applies one. Over many small batches every event is applied once, in
// stream order, and the progress reports reach the end; when applying a
// batch fails the build stops there with the error, keeps the batches
// before it, and leaves no reader goroutine behind.
func TestBuildPipelined(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	var last uint64
	for i := range 250 {
		last = publish(t, js, fmt.Sprintf("8900000000000000%04d", i%7), i)
	}
	ctx := context.Background()
	p := &counter{}
	db := openModel(t, p, "pipelined.db")
	var reports []projection.Progress
	pos, err := projection.Build(ctx, js, events.StreamName, p, db, projection.BuildOptions{
		BatchSize: 16, Progress: func(pr projection.Progress) { reports = append(reports, pr) },
	})
	if err != nil || pos != last || rows(t, db.Writer) != 250 || p.applies != 250 {
		t.Fatalf("build: pos %d (want %d), %d rows, %d applies, err %v", pos, last, rows(t, db.Writer), p.applies, err)
	}
	var prev uint64
	if err := db.Writer.QueryRow(`SELECT count(*) FROM seen s JOIN seen t ON t.seq = s.seq + 1`).Scan(&prev); err != nil || prev != 249 {
		t.Fatalf("stream sequences applied: %d consecutive pairs, err %v", prev, err)
	}
	if n := len(reports); n < 250/16 || reports[n-1].Position != last || reports[n-1].Applied != 250 {
		t.Fatalf("%d progress reports, last %+v", n, reports[len(reports)-1])
	}

	f := &failAt{seq: 100}
	fdb := openModel(t, f, "failing.db")
	pos, err = projection.Build(ctx, js, events.StreamName, f, fdb, projection.BuildOptions{BatchSize: 16})
	if err == nil || !projection.IsStorageError(err) {
		t.Fatalf("build over a failing disk: pos %d, err %v; want the storage error", pos, err)
	}
	// Batches of 16: the one holding sequence 100 (97..112) failed whole.
	if pos != 96 || rows(t, fdb.Writer) != 96 {
		t.Fatalf("failed build: pos %d, %d rows; want the 96 events of the batches before the failure", pos, rows(t, fdb.Writer))
	}
	// The reader goroutine ends with the build (the server's consumer
	// goroutines end on their own schedule and are not counted).
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "projection.fetchBatches") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build's reader goroutine outlived the failed build:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// batchedFailAt is a failAt whose builds ask for batches of 16.
type batchedFailAt struct{ *failAt }

func (batchedFailAt) BuildBatchSize() int { return 16 }

// TestBuildBatchSizeFromProjector: without BuildOptions.BatchSize, Build
// uses the projector's BuildBatchSize. A failure at sequence 100 keeps
// exactly the batches of 16 before it (with the default size the one
// batch would hold all 250 events and the build would keep none).
func TestBuildBatchSizeFromProjector(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	for i := range 250 {
		publish(t, js, fmt.Sprintf("8900000000000000%04d", i%7), i)
	}
	p := batchedFailAt{&failAt{seq: 100}}
	db := openModel(t, p, "batched.db")
	pos, err := projection.Build(context.Background(), js, events.StreamName, p, db, projection.BuildOptions{})
	if err == nil || !projection.IsStorageError(err) {
		t.Fatalf("build: pos %d, err %v; want the storage error", pos, err)
	}
	if pos != 96 || rows(t, db.Writer) != 96 {
		t.Fatalf("build: pos %d, %d rows; want the 96 events of the batches of 16 before the failure", pos, rows(t, db.Writer))
	}
}
