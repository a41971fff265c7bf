package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every phase tiny, so the harness keeps compiling and
// working. It checks that each phase produces sane, non-zero figures; it
// never checks a speed (benchmarks are not timed tests).
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts JetStream and HTTP servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	prof := t.TempDir()
	res, err := Run(ctx, Options{
		Events: 2000, Sims: 200, Concurrency: 8,
		IngestDuration: time.Second, QueryClients: 4, QueryDuration: 500 * time.Millisecond,
		FreshRate: 200, FreshDuration: time.Second,
		Dir: t.TempDir(), ProfileDir: prof, Log: &log,
	})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}

	in := res.Ingest
	if in == nil || in.Echo.OK == 0 || in.Ingest.OK == 0 || in.Ratio() <= 0 {
		t.Fatalf("ingest figures: %+v", in)
	}
	if in.Ingest.OK != in.Ingest.Sent {
		t.Errorf("ingest answered non-2xx: %s", in.Ingest)
	}
	if in.Ingest.Latency.Quantile(0.99) <= 0 {
		t.Errorf("no ingest latency recorded")
	}

	rb := res.Rebuild
	if rb == nil || rb.BaselineRows != 2000 || rb.BaselineRate() <= 0 || len(rb.Builds) != 2 {
		t.Fatalf("rebuild figures: %+v", rb)
	}
	for _, b := range rb.Builds {
		// Every stored event reaches Apply (the timeline ignores none
		// here: all generated events have an ICCID).
		if b.Applied != 2000 || b.Rate() <= 0 {
			t.Errorf("build %s applied %d at %.0f/s", b.Name, b.Applied, b.Rate())
		}
	}

	if len(res.Queries) != 4 {
		t.Fatalf("%d query results", len(res.Queries))
	}
	bars := 0
	for _, q := range res.Queries {
		if q.Bar {
			bars++
			if !strings.HasPrefix(q.Name, "usage 31 days") {
				t.Errorf("the bar is on %q, not the usage query", q.Name)
			}
		}
		if q.Queries == 0 || q.Non200 != 0 || q.Latency.Quantile(0.5) <= 0 {
			t.Errorf("query %s: %d queries, %d non-200 (%s)", q.Name, q.Queries, q.Non200, q.FirstBad)
		}
	}

	if bars != 1 {
		t.Errorf("%d query results carry the bar, want 1", bars)
	}

	if len(res.Freshness) != 2 {
		t.Fatalf("%d freshness results", len(res.Freshness))
	}
	for _, f := range res.Freshness {
		if f.Webhooks == 0 || f.Missed != 0 {
			t.Errorf("freshness %s: %d webhooks measured, %d never visible", f.Model, f.Webhooks, f.Missed)
		}
	}

	if res.PeakRSS <= 0 || len(res.Phases) < 5 {
		t.Errorf("memory: peak %d, phases %+v", res.PeakRSS, res.Phases)
	}
	for _, pm := range res.Phases {
		// Every phase did work on this process's CPUs; /proc/stat exists
		// on Linux, so steal is known (often 0).
		c := pm.CPU
		if c.Wall <= 0 || c.Process <= 0 || c.Cores() > float64(res.Machine.CPUs)+0.5 || c.StealPercent < 0 || c.StealPercent > 100 {
			t.Errorf("cpu of %s: %+v (%.2f cores)", pm.Phase, c, c.Cores())
		}
	}
	// With ProfileDir every phase leaves a CPU profile and the heap at its
	// start and end, each a gzipped pprof file.
	for _, pu := range res.Phases {
		for _, kind := range []string{".cpu.pprof", ".start.heap.pprof", ".end.heap.pprof"} {
			name := strings.ReplaceAll(pu.Phase, " ", "-") + kind
			b, err := os.ReadFile(filepath.Join(prof, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
				t.Errorf("%s is not a gzipped profile (%d bytes)", name, len(b))
			}
		}
	}
	var out bytes.Buffer
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	// The bar column sits on the usage row only.
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "usage 31 days") != strings.Contains(line, "p99 ≤ 5 ms") {
			t.Errorf("bar column misplaced: %q", line)
		}
	}
	for _, want := range []string{"commit", "CPUs", "ratio ingest / echo", "projection.Build timeline", "projection.Build thresholds",
		"bare echo handler, one fixed usage answer", "usage 31 days", "same usage query, paced", "fleet thresholds", "visible in timeline", "visible in thresholds", "VmHWM", "taken by the host (steal)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// TestStoreReuse: a store is reused only when its marker names the same
// events, SIMs and seed (and today): anything else is filled again.
func TestStoreReuse(t *testing.T) {
	dir := t.TempDir()
	o := Options{Events: 2000, Sims: 50, Seed: 7}
	if storeReusable(dir, o) {
		t.Fatal("an empty directory is reusable")
	}
	if err := markStore(dir, o); err != nil {
		t.Fatal(err)
	}
	if !storeReusable(dir, o) {
		t.Fatal("the store just marked is not reusable")
	}
	for _, other := range []Options{{Events: 2001, Sims: 50, Seed: 7}, {Events: 2000, Sims: 51, Seed: 7}, {Events: 2000, Sims: 50, Seed: 8}} {
		if storeReusable(dir, other) {
			t.Errorf("store filled for %+v reused for %+v", o, other)
		}
	}
}
