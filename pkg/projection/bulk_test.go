package projection_test

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

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
