package thresholds

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// truphoneReceived fixes the receipt time of each Truphone example (Truphone
// sends no time, so receipt time is the provider time).
var truphoneReceived = map[string]time.Time{
	"DOWNLOAD_PROGRESS.json":       time.Date(2024, 10, 15, 8, 0, 0, 0, time.UTC),
	"USAGE_THRESHOLD.json":         time.Date(2024, 11, 10, 10, 0, 0, 0, time.UTC),
	"USAGE_THRESHOLD.legacy.json":  time.Date(2024, 11, 10, 10, 0, 5, 0, time.UTC),
	"SUBSCRIPTION_END.json":        time.Date(2024, 11, 14, 9, 30, 30, 0, time.UTC),
	"SUBSCRIPTION_END.legacy.json": time.Date(2024, 11, 14, 9, 31, 0, 0, time.UTC),
}

// parseBytes runs the ingest parser of provider over raw.
func parseBytes(t testing.TB, provider string, raw []byte, received time.Time) *simtrailv1.Event {
	t.Helper()
	var p providers.Parsed
	var err error
	switch provider {
	case "droam":
		p, err = providers.ParseDroam(raw, received)
	case "roamify":
		p, err = providers.ParseRoamify(raw, received)
	case "truphone":
		p, err = providers.ParseTruphone(raw, received)
	default:
		t.Fatalf("unknown provider %q", provider)
	}
	if err != nil || p.Event == nil {
		t.Fatalf("parse %s: %v", provider, err)
	}
	return p.Event
}

// example parses testdata/<provider>/<file> with its fixed receipt time.
func example(t testing.TB, provider, file string) *simtrailv1.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", provider, file))
	if err != nil {
		t.Fatal(err)
	}
	rt := epoch
	if provider == "truphone" {
		var ok bool
		if rt, ok = truphoneReceived[file]; !ok {
			t.Fatalf("no receipt time for %s", file)
		}
	}
	return parseBytes(t, provider, raw, rt)
}

// examples parses several files of one provider.
func examples(t testing.TB, provider string, files ...string) []*simtrailv1.Event {
	out := make([]*simtrailv1.Event, len(files))
	for i, f := range files {
		out[i] = example(t, provider, f)
	}
	return out
}

// allExamples is every example the thresholds model reads, in file order.
func allExamples(t testing.TB) []*simtrailv1.Event {
	t.Helper()
	var out []*simtrailv1.Event
	for _, prov := range []string{"droam", "roamify", "truphone"} {
		files, err := filepath.Glob(filepath.Join("testdata", prov, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			out = append(out, example(t, prov, filepath.Base(f)))
		}
	}
	return out
}

// openDB opens a fresh read model file with the real migrations.
func openDB(t testing.TB, p *Projector) *projection.DB {
	t.Helper()
	db, err := projection.Open(context.Background(), filepath.Join(t.TempDir(), "thresholds.db"), p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newProjector(t testing.TB, opts Options) *Projector {
	t.Helper()
	p, err := NewProjector(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// applyAll applies evs in order with stream sequences from *seq+1.
func applyAll(t testing.TB, db *projection.DB, p *Projector, seq *uint64, evs ...*simtrailv1.Event) {
	t.Helper()
	msgs := make([]projection.Message, len(evs))
	for i, ev := range evs {
		*seq++
		msgs[i] = projection.Message{Seq: *seq, Subject: "simtrail.events.x", Event: ev}
	}
	res, err := projection.ApplyBatch(context.Background(), db.Writer, p, msgs, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if res.Poisoned != 0 {
		t.Fatalf("%d events poisoned", res.Poisoned)
	}
}

// build applies evs to a fresh model and returns its database.
func build(t testing.TB, opts Options, evs ...*simtrailv1.Event) *sql.DB {
	t.Helper()
	p := newProjector(t, opts)
	db := openDB(t, p)
	var seq uint64
	applyAll(t, db, p, &seq, evs...)
	return db.Reader
}

func simView(t testing.TB, db *sql.DB, iccid string) *SIMView {
	t.Helper()
	v, err := QuerySIM(context.Background(), db, iccid)
	if err != nil {
		t.Fatalf("sim %s: %v", iccid, err)
	}
	return v
}

func poolView(t testing.TB, db *sql.DB, id string) *PoolView {
	t.Helper()
	v, err := QueryPool(context.Background(), db, id)
	if err != nil {
		t.Fatalf("pool %s: %v", id, err)
	}
	return v
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// outboxCount counts outbox rows per (subject key, period, level).
func outboxRows(t testing.TB, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT subject_key, period_key, level FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k, pk string
		var l int
		if err := rows.Scan(&k, &pk, &l); err != nil {
			t.Fatal(err)
		}
		out[k+"|"+pk+"|"+strconv.Itoa(l)]++
	}
	return out
}
