package timeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/pkg/projection/projtest"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestUsageDayMatchesSnapshotFold checks the apply-time per-day sums
// against the query-time fold they replace: for random snapshot histories
// (counter drops, period changes, equal provider times, days before 1970)
// applied in random order with duplicates, in batches, the day and month
// buckets read from usage_day equal SnapshotDeltas + BucketDeltas over all
// snapshots sorted by (at, event id).
func TestUsageDayMatchesSnapshotFold(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			snaps, evs := genSnapshots(r, seed%5 == 0)
			order := r.Perm(len(evs))
			for range len(evs) / 4 { // redeliveries
				order = append(order, r.IntN(len(evs)))
			}
			// several transactions, like the runner
			db := applyInOrder(t, evs, order, func() int { return 1 + r.IntN(20) })
			checkUsageDays(t, db, snaps)
		})
	}
}

// TestUsageDayBackfill checks migration 00002's SQL backfill of usage_day
// from the snapshots a version-1 database already holds.
func TestUsageDayBackfill(t *testing.T) {
	ctx := context.Background()
	p := NewProjector()
	v1 := fstest.MapFS{}
	b, err := fs.ReadFile(p.Migrations(), "00001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	v1["00001_init.sql"] = &fstest.MapFile{Data: b}
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := projection.Open(ctx, path, v1)
	if err != nil {
		t.Fatal(err)
	}
	var all []Snapshot
	for seed := range uint64(20) {
		snaps, _ := genSnapshots(rand.New(rand.NewPCG(seed, 7)), seed%5 == 0)
		for _, s := range snaps {
			if _, err := db.Writer.ExecContext(ctx, `INSERT INTO usage_snapshot(event_id, iccid, at, used_bytes, period_id) VALUES(?,?,?,?,?)`,
				s.EventID, fmt.Sprint(seed), s.At.UnixNano(), s.Used, s.PeriodID); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, snaps...)
	}
	db.Close()
	if db, err = projection.Open(ctx, path, p.Migrations()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for seed := range uint64(20) {
		snaps, _ := genSnapshots(rand.New(rand.NewPCG(seed, 7)), seed%5 == 0)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkUsageDaysOf(t, db, fmt.Sprint(seed), snaps) })
	}
}

const testICCID = "8937204016150000018"

// inOrder is evs[k] for each k of order, numbered from 1 in that order.
func inOrder(evs []*simtrailv1.Event, order []int) []projection.Message {
	out := make([]projection.Message, len(order))
	for i, k := range order {
		out[i] = projection.Message{Seq: uint64(i + 1), Event: evs[k]}
	}
	return out
}

// applyBatches applies msgs to w through p in transactions of batch()
// messages each.
func applyBatches(t *testing.T, w *sql.DB, p *Projector, msgs []projection.Message, batch func() int) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(len(msgs), batch())
		if _, err := projection.ApplyBatch(context.Background(), w, p, msgs[:n], 1, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// applyInOrder opens a fresh read model and applies evs[k] for each k of
// order (sequence numbers from 1) through projection.ApplyBatch, in
// transactions of batch() events each.
func applyInOrder(t *testing.T, evs []*simtrailv1.Event, order []int, batch func() int) *projection.DB {
	t.Helper()
	ctx := context.Background()
	p := NewProjector()
	db, err := projection.Open(ctx, filepath.Join(t.TempDir(), "model.db"), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	applyBatches(t, db.Writer, p, inOrder(evs, order), batch)
	return db
}

func checkUsageDays(t *testing.T, db *projection.DB, snaps []Snapshot) {
	t.Helper()
	checkUsageDaysOf(t, db, testICCID, snaps)
}

// checkUsageDaysOf compares the day and month buckets read from usage_day
// for iccid with those of the query-time fold over snaps.
func checkUsageDaysOf(t *testing.T, db *projection.DB, iccid string, snaps []Snapshot) {
	t.Helper()
	ctx := context.Background()
	snaps = slices.Clone(snaps)
	slices.SortFunc(snaps, func(a, b Snapshot) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	want := SnapshotDeltas(nil, snaps)
	rd, err := beginRead(ctx, db.Reader)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.close()
	for _, g := range []Granularity{Day, Month} {
		from := g.Floor(snaps[0].At)
		to := g.Next(g.Floor(snaps[len(snaps)-1].At))
		got, daily, _, err := rd.dayUsage(ctx, iccid, from, to, nil)
		if err != nil || daily {
			t.Fatalf("daily %v, err %v", daily, err)
		}
		for _, byLoc := range []bool{false, true} {
			wb, wt := BucketDeltas(g, from, to, want, byLoc)
			gb, gt := BucketDeltas(g, from, to, got, byLoc)
			if wt != gt || !slices.EqualFunc(wb, gb, bucketEqual) {
				t.Fatalf("%s grouped=%v: usage_day gives total %d %v, the snapshot fold %d %v", g, byLoc, gt, gb, wt, wb)
			}
		}
	}
}

// genSnapshots makes a random usage history of testICCID: counter drops,
// period changes, snapshots without a period, equal provider times, and
// (pre1970) days before the epoch.
func genSnapshots(r *rand.Rand, pre1970 bool) ([]Snapshot, []*simtrailv1.Event) {
	iccid := testICCID
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	if pre1970 {
		base = time.Date(1969, 12, 25, 0, 0, 0, 0, time.UTC)
	}
	var snaps []Snapshot
	var evs []*simtrailv1.Event
	at, used, period := base, int64(0), "p0"
	for i := range 5 + r.IntN(60) {
		switch r.IntN(10) {
		case 0: // same provider time as the previous snapshot
		case 1:
			at = at.Add(time.Duration(r.IntN(72)) * time.Hour)
		default:
			at = at.Add(time.Duration(r.IntN(300)) * time.Minute)
		}
		switch r.IntN(12) {
		case 0:
			used = int64(r.IntN(1000)) // a drop: counter reset
		case 1:
			period = fmt.Sprintf("p%d", i) // a new period
			used = int64(r.IntN(1000))
		case 2:
			period = "" // a provider that states no period
		default:
			used += int64(r.IntN(5000))
		}
		id := fmt.Sprintf("%016x", r.Uint64())
		u := used
		snaps = append(snaps, Snapshot{At: at, EventID: id, Used: u, PeriodID: period})
		ev := &simtrailv1.Event{Id: id, Iccid: iccid, Kind: simtrailv1.Kind_KIND_USAGE,
			Provider: simtrailv1.Provider_PROVIDER_DROAM, OccurredAt: timestamppb.New(at),
			Sim: &simtrailv1.SimSnapshot{Usage: &simtrailv1.UsageSnapshot{UsedBytes: &u}}}
		if period != "" {
			ev.Sim.Period = &simtrailv1.Period{Id: period}
		}
		evs = append(evs, ev)
	}
	return snaps, evs
}

func bucketEqual(a, b Bucket) bool {
	return a.Start == b.Start && a.End == b.End && a.DataBytes == b.DataBytes &&
		(a.Location == nil) == (b.Location == nil) && (a.Location == nil || *a.Location == *b.Location)
}

// TestAppendUsageJSON holds the hand-written usage JSON byte-identical to
// what c.JSON (encoding/json's Encoder) sends for the same response.
func TestAppendUsageJSON(t *testing.T) {
	from, to := "2025-03-01T00:00:00Z", "2025-03-04T00:00:00Z"
	day := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	locs := []string{"NL", "", "unknown", "<b>&\"\\", "Ünïcode", "bad \xff utf8", "line\u2028sep", "\x00\x1f"}
	for i, c := range []struct {
		resp    UsageResponse
		grouped bool
	}{
		{resp: UsageResponse{ICCID: "1", Granularity: Day, Source: SourceSnapshots}},
		{resp: UsageResponse{ICCID: "8937204016150000018", Granularity: Day, From: &from, To: &to, Source: SourceDaily, TotalDataBytes: -5}},
		{resp: UsageResponse{ICCID: "8937204016150000018", Granularity: Month, From: &from, To: &to, Source: SourceDaily, TotalDataBytes: 1 << 62}, grouped: true},
		{resp: UsageResponse{ICCID: "8937204016150000018", Granularity: Hour, From: &from, To: &to, Source: SourceSnapshots}},
	} {
		var sums []bucketSum
		for j := range i * 3 {
			s := bucketSum{start: day.AddDate(0, 0, j), end: day.AddDate(0, 0, j+1).Add(time.Duration(j) * time.Millisecond), bytes: int64(j*j - 3)}
			if c.grouped {
				s.loc = locs[j%len(locs)]
			}
			sums = append(sums, s)
		}
		resp := c.resp
		resp.Buckets = []Bucket{}
		for _, s := range sums {
			b := Bucket{Start: formatTime(s.start), End: formatTime(s.end), DataBytes: s.bytes}
			if c.grouped {
				loc := s.loc
				b.Location = &loc
			}
			resp.Buckets = append(resp.Buckets, b)
		}
		var want strings.Builder
		if err := json.NewEncoder(&want).Encode(resp); err != nil {
			t.Fatal(err)
		}
		if got := string(appendUsageJSON(nil, &c.resp, sums, c.grouped)); got != want.String() {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want.String())
		}
	}
}

// TestDeferredIndexesMatchSchema: the index Build creates after a bulk
// build is the one the migrations create.
func TestDeferredIndexesMatchSchema(t *testing.T) {
	projtest.DeferredIndexesMatchSchema(t, NewProjector())
}

// TestAppendTime holds the digit-by-digit formatting equal to formatTime.
func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 13, 4, 5, 600, time.UTC),
		time.Date(2024, 2, 29, 13, 4, 5, 0, time.FixedZone("x", 5*3600+1800)),
	} {
		if got, want := string(appendTime(nil, tm)), formatTime(tm); got != want {
			t.Errorf("%v: %s, want %s", tm, got, want)
		}
	}
}

// TestCountDayBuckets: the day shortcut counts like stepping day by day.
func TestCountDayBuckets(t *testing.T) {
	from := time.Date(2023, 12, 30, 0, 0, 0, 0, time.UTC)
	for _, n := range []int{0, 1, 2, 31, 366, MaxBuckets, MaxBuckets + 1, MaxBuckets + 50} {
		to := from.AddDate(0, 0, n)
		want := 0
		for s := from; s.Before(to) && want <= MaxBuckets; s = s.AddDate(0, 0, 1) {
			want++
		}
		if got := Day.countBuckets(from, to, MaxBuckets); got != want {
			t.Errorf("%d days: %d buckets, want %d", n, got, want)
		}
	}
	if got := Day.countBuckets(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), MaxBuckets); got != MaxBuckets+1 {
		t.Errorf("ten millennia: %d buckets", got)
	}
}

// TestUsageDayAcrossTriggerMigration: a model whose usage_day the
// triggers of migration 00002 kept (snapshots inserted as version 2 did)
// is upgraded by 00003, which drops them, and the projector goes on
// folding snapshots in Go, late ones among them: the day and month sums
// equal the fold over every snapshot, and no trigger is left.
func TestUsageDayAcrossTriggerMigration(t *testing.T) {
	ctx := context.Background()
	p := NewProjector()
	v2 := fstest.MapFS{}
	for _, f := range []string{"00001_init.sql", "00002_usage_day.sql"} {
		b, err := fs.ReadFile(p.Migrations(), f)
		if err != nil {
			t.Fatal(err)
		}
		v2[f] = &fstest.MapFile{Data: b}
	}
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			snaps, evs := genSnapshots(r, seed%4 == 0)
			order := r.Perm(len(evs))
			half := len(order) / 2
			path := filepath.Join(t.TempDir(), "v2.db")
			db, err := projection.Open(ctx, path, v2)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range order[:half] {
				s := snaps[k]
				if _, err := db.Writer.ExecContext(ctx, `INSERT INTO sim_event(id, iccid, kind, provider, provider_type, at) VALUES(?,?,'usage','droam','x',?)`,
					s.EventID, testICCID, s.At.UnixNano()); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Writer.ExecContext(ctx, `INSERT INTO usage_snapshot(event_id, iccid, at, used_bytes, period_id) VALUES(?,?,?,?,?)`,
					s.EventID, testICCID, s.At.UnixNano(), s.Used, s.PeriodID); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			if db, err = projection.Open(ctx, path, p.Migrations()); err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var triggers int
			if err := db.Reader.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'`).Scan(&triggers); err != nil || triggers != 0 {
				t.Fatalf("%d triggers after the migration (err %v)", triggers, err)
			}
			// All of them, the first half again: copies change nothing.
			applyBatches(t, db.Writer, p, inOrder(evs, order), func() int { return 1 + r.IntN(8) })
			checkUsageDays(t, db, snaps)
		})
	}
}

// TestSnapshotCacheSeesOtherWriters: each projector keeps its writer's
// newest snapshot per SIM across transactions. Two projectors taking turns
// on one file through two connections (as a restarted or second process
// would) must each notice the other's commits (SQLite's data_version) and
// read the newest snapshot again, or usage would be folded from a stale
// predecessor.
func TestSnapshotCacheSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 13))
			snaps, evs := genSnapshots(r, false)
			path := filepath.Join(t.TempDir(), "shared.db")
			var ps []*Projector
			var dbs []*projection.DB
			for range 2 {
				p := NewProjector()
				db, err := projection.Open(ctx, path, p.Migrations())
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ps, dbs = append(ps, p), append(dbs, db)
			}
			// In provider order, so that nearly every snapshot follows
			// the newest one stored: the cached path.
			for i, ev := range evs {
				w := (i / 3) % 2
				m := projection.Message{Seq: uint64(i + 1), Event: ev}
				if _, err := projection.ApplyBatch(ctx, dbs[w].Writer, ps[w], []projection.Message{m}, 1, log); err != nil {
					t.Fatal(err)
				}
			}
			checkUsageDays(t, dbs[0], snaps)
		})
	}
}
