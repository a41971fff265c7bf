package timeline_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/projection"
	"github.com/simtrail/simtrail/services/timeline"
)

// BenchmarkProjection measures projection throughput: realistic events
// applied with projection.ApplyBatch (the runner's own apply path, one
// transaction and checkpoint per batch of 1000) into a real SQLite file.
// No NATS: this is the read model's cost alone.
func BenchmarkProjection(b *testing.B) {
	const batch = 1000
	evs := genEvents(1, 200, 500) // 100k events, 200 SIMs
	msgs := make([]projection.Message, len(evs))
	for i, ev := range evs {
		// Through the wire encoding, as the runner sees them.
		data, err := events.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		dec, err := events.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = projection.Message{Seq: uint64(i + 1), Subject: events.Subject(ev), Event: dec}
	}
	ctx := context.Background()
	p := timeline.NewProjector()
	db, err := projection.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), p.Migrations())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if os.Getenv("BENCH_BULK") != "" {
		if _, err := db.BulkMode(ctx); err != nil {
			b.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	b.ResetTimer()
	applied := 0
	seq := uint64(0)
	for i := 0; i < b.N; i++ {
		// Each iteration is one batch of distinct events; after the whole
		// set, fresh ids are needed so the work is not a no-op duplicate.
		off := (i * batch) % len(msgs)
		if off == 0 && i > 0 {
			b.StopTimer()
			for j := range msgs {
				msgs[j].Event.Id += "x"
			}
			b.StartTimer()
		}
		chunk := make([]projection.Message, batch)
		for j := range chunk {
			seq++
			chunk[j] = msgs[off+j]
			chunk[j].Seq = seq
		}
		res, err := projection.ApplyBatch(ctx, db.Writer, p, chunk, 3, log)
		if err != nil {
			b.Fatal(err)
		}
		if res.Poisoned > 0 {
			b.Fatalf("%d poison events", res.Poisoned)
		}
		applied += res.Applied
	}
	b.ReportMetric(float64(applied)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkQueries measures 31-day usage queries, the summary and the
// first events page through the echo handlers, without the network, over 1000 SIMs
// with 100 events each.
func BenchmarkQueries(b *testing.B) {
	const nSIMs = 1000
	evs := genEvents(3, nSIMs, 100)
	ctx := context.Background()
	p := timeline.NewProjector()
	db, err := projection.Open(ctx, filepath.Join(b.TempDir(), "q.db"), p.Migrations())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.DiscardHandler)
	for off := 0; off < len(evs); off += 1000 {
		var msgs []projection.Message
		for i, ev := range evs[off:min(off+1000, len(evs))] {
			msgs = append(msgs, projection.Message{Seq: uint64(off + i + 1), Event: ev})
		}
		if _, err := projection.ApplyBatch(ctx, db.Writer, p, msgs, 1, log); err != nil {
			b.Fatal(err)
		}
	}
	r, err := projection.NewRunner(ctx, p, db, nil, projection.Config{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	e := httpx.NewEcho(log)
	timeline.Routes(e, r)
	iccids := genIccids(nSIMs)
	for _, c := range []struct{ name, q string }{
		{"usage_day_31d", "/usage?granularity=day&from=2025-03-01&to=2025-04-01"},
		{"usage_hour_31d", "/usage?granularity=hour&from=2025-03-01&to=2025-04-01"},
		{"summary", ""},
		{"events", "/events"},
	} {
		q := c.q
		b.Run(c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					req := httptest.NewRequest(http.MethodGet, "/v1/sims/"+iccids[i%nSIMs]+q, nil)
					rec := httptest.NewRecorder()
					e.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("%d %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}
