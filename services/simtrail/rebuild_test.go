package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/services/ingest/providers"
	"github.com/simtrail/simtrail/services/thresholds"
	"github.com/simtrail/simtrail/services/timeline"
)

// exampleEvents parses the bundled example webhooks into events with fixed
// receipt times, in the order the docs' timelines give.
func exampleEvents(t *testing.T) [][]byte {
	t.Helper()
	dir := filepath.Join("..", "ingest", "providers", "testdata")
	files := []struct{ provider, name string }{
		{"roamify", "esim.status.01-installed.json"}, {"roamify", "esim.status.02-activated.json"},
		{"roamify", "esim.usage.01.json"}, {"roamify", "esim.usage.02.json"},
		{"droam", "sim_card.assigned_to_end_user.json"}, {"droam", "sim_card.first_usage.json"},
		{"truphone", "USAGE_THRESHOLD.json"},
		// --- events after the cut ---
		{"roamify", "esim.usage.03-threshold25.json"}, {"roamify", "esim.usage.04.json"},
		{"roamify", "esim.usage.05.json"}, {"droam", "rule.sim_card.remaining_usage.triggered.json"},
		{"droam", "rule.sim_card.imei.changed.json"}, {"truphone", "SUBSCRIPTION_END.json"},
	}
	parse := map[string]func([]byte, time.Time) (providers.Parsed, error){
		"droam": providers.ParseDroam, "roamify": providers.ParseRoamify, "truphone": providers.ParseTruphone,
	}
	recv := time.Date(2025, 8, 12, 0, 0, 0, 0, time.UTC)
	var out [][]byte
	for i, f := range files {
		raw, err := os.ReadFile(filepath.Join(dir, f.provider, f.name))
		if err != nil {
			t.Fatal(err)
		}
		p, err := parse[f.provider](raw, recv.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		data, err := events.Encode(p.Event)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, []byte(events.Subject(p.Event)+"\n"+string(data)))
	}
	return out
}

func publishAll(t *testing.T, js jetstream.JetStream, msgs [][]byte) uint64 {
	t.Helper()
	var last uint64
	for _, m := range msgs {
		subject, data, _ := strings.Cut(string(m), "\n")
		ack, err := js.Publish(context.Background(), subject, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	return last
}

// dumpDB renders every table of a read model, rows sorted, for comparison.
func dumpDB(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'goose%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tbl := range tables {
		rs, err := db.Query(`SELECT * FROM "` + tbl + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		var lines []string
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rs.Scan(ptrs...)
			lines = append(lines, fmt.Sprint(vals...))
		}
		rs.Close()
		sort.Strings(lines)
		fmt.Fprintf(&b, "== %s (%d rows)\n%s\n", tbl, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// TestRebuildUntil: `simtrail rebuild --until T` equals a model built from a
// log that only ever held the events stored up to T, for both projections.
// The reference is built in transactions of 3 events (--batch-size), so the
// equality also shows that the transaction size changes nothing in a model.
func TestRebuildUntil(t *testing.T) {
	msgs := exampleEvents(t)
	const cut = 7

	full := natstest.Run(t)
	full.Stream(t)
	_, js := full.Conn(t)
	cutSeq := publishAll(t, js, msgs[:cut])
	st, _ := js.Stream(context.Background(), events.StreamName)
	m, err := st.GetMsg(context.Background(), cutSeq)
	if err != nil {
		t.Fatal(err)
	}
	until := m.Time
	for !time.Now().After(until) {
		runtime.Gosched()
	}
	publishAll(t, js, msgs[cut:])

	only := natstest.Run(t)
	only.Stream(t)
	_, js2 := only.Conn(t)
	publishAll(t, js2, msgs[:cut])

	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{timeline.Name, thresholds.Name} {
		mk := func() projection.Projector {
			if name == timeline.Name {
				return timeline.NewProjector()
			}
			p, err := thresholds.NewProjector(thresholds.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		asOf := filepath.Join(dir, name+"-asof.db")
		ref := filepath.Join(dir, name+"-ref.db")
		var sink strings.Builder
		if err := rebuildOffline(ctx, natsx.ConnConfig{URLs: full.URL()}, mk(), asOf, projection.BuildOptions{Until: until}, &sink); err != nil {
			t.Fatal(err)
		}
		if err := rebuildOffline(ctx, natsx.ConnConfig{URLs: only.URL()}, mk(), ref, projection.BuildOptions{BatchSize: 3}, &sink); err != nil {
			t.Fatal(err)
		}
		a, b := dumpDB(t, asOf), dumpDB(t, ref)
		if a != b {
			t.Errorf("%s: model as of the cut differs from the model of the first %d events:\n--- as of\n%s\n--- reference\n%s", name, cut, a, b)
		}
		if !strings.Contains(a, "rows)") || strings.Count(a, "(0 rows)") == strings.Count(a, "== ") {
			t.Errorf("%s: the rebuilt model is empty:\n%s", name, a)
		}
		// The full rebuild must differ: the cut really removed events.
		fullPath := filepath.Join(dir, name+"-full.db")
		if err := rebuildOffline(ctx, natsx.ConnConfig{URLs: full.URL()}, mk(), fullPath, projection.BuildOptions{}, &sink); err != nil {
			t.Fatal(err)
		}
		if dumpDB(t, fullPath) == a {
			t.Errorf("%s: the full model equals the as-of model; the cut tested nothing", name)
		}
	}
}

// TestRebuildFlagErrors: bad --batch-size combinations are refused before
// anything is connected to or written.
func TestRebuildFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rebuild", "timeline", "--into", filepath.Join(dir, "a.db"), "--batch-size", "-1"}, "--batch-size -1"},
		{[]string{"rebuild", "timeline", "--into", filepath.Join(dir, "a.db"), "--batch-size", "1000001"}, "--batch-size 1000001"},
		{[]string{"rebuild", "thresholds", "--url", "http://127.0.0.1:1", "--batch-size", "500"}, "--batch-size are for offline builds"},
		{[]string{"rebuild", "thresholds", "--url", "http://127.0.0.1:1", "--batch-size", "0"}, "--batch-size are for offline builds"},
	} {
		cmd := newRootCmd()
		cmd.SetArgs(tc.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one saying %q", tc.args, err, tc.want)
		}
		if _, serr := os.Stat(filepath.Join(dir, "a.db")); serr == nil {
			t.Errorf("%v: wrote the --into file", tc.args)
		}
	}
}

// failingAt is a projector whose Apply of stream sequence seq fails as a
// full disk does: the build stops there, keeping the batches before it.
type failingAt struct {
	projection.Projector
	seq uint64
}

func (f failingAt) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) error {
	if m.Seq == f.seq {
		return errors.New("insert: database or disk is full")
	}
	return f.Projector.Apply(ctx, tx, m)
}

// TestRebuildOfflineBatchSize: rebuildOffline builds in transactions of
// opts.BatchSize. A failure at sequence 5 with batches of 3 leaves the
// first batch committed (with the projection's own size the one batch
// would hold every event and none would be kept).
func TestRebuildOfflineBatchSize(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	publishAll(t, js, exampleEvents(t))
	into := filepath.Join(t.TempDir(), "timeline.db")
	p := failingAt{timeline.NewProjector(), 5}
	var sink strings.Builder
	err := rebuildOffline(context.Background(), natsx.ConnConfig{URLs: ns.URL()}, p, into, projection.BuildOptions{BatchSize: 3}, &sink)
	if !projection.IsStorageError(err) {
		t.Fatalf("build failing at sequence 5: err %v, want the storage error", err)
	}
	db, err := sql.Open("sqlite3", "file:"+into+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if pos, err := projection.Checkpoint(context.Background(), db, timeline.Name); err != nil || pos != 3 {
		t.Fatalf("checkpoint after the failed build: %d, err %v; want 3, the first batch of 3", pos, err)
	}
}
