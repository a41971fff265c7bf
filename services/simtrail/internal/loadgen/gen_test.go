package loadgen

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

var wantKind = map[string]simtrailv1.Kind{
	TypeRoamifyUsage:      simtrailv1.Kind_KIND_USAGE,
	TypeRoamifyStatus:     simtrailv1.Kind_KIND_STATUS,
	TypeDroamCurrentUsage: simtrailv1.Kind_KIND_THRESHOLD,
	TypeDroamRemaining:    simtrailv1.Kind_KIND_THRESHOLD,
	TypeDroamStatus:       simtrailv1.Kind_KIND_STATUS,
	TypeDroamIMEI:         simtrailv1.Kind_KIND_IMEI,
	TypeTruphoneThreshold: simtrailv1.Kind_KIND_THRESHOLD,
	TypeTruphoneEnd:       simtrailv1.Kind_KIND_LIFECYCLE,
}

func parse(t *testing.T, r *Request, now time.Time) *simtrailv1.Event {
	t.Helper()
	var p providers.Parsed
	var err error
	switch r.Provider {
	case Droam:
		p, err = providers.ParseDroam(r.Body, now)
	case Roamify:
		p, err = providers.ParseRoamify(r.Body, now)
	case Truphone:
		p, err = providers.ParseTruphone(r.Body, now)
	default:
		t.Fatalf("unknown provider %q", r.Provider)
	}
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", r.Type, err, r.Body)
	}
	return p.Event
}

func TestGeneratedRequestsVerifyAndParse(t *testing.T) {
	const n = 30000
	cfg := Config{Sims: 300, Seed: 7}
	g := NewGenerator(cfg, 0, 1)
	now := time.Now()
	sec := DevSecrets
	seen := map[string]bool{}
	types := map[string]int{}
	var dups, late int
	type point struct {
		at     time.Time
		used   int64
		period string
	}
	perSim := map[string][]point{}
	for i := 0; i < n; i++ {
		r := g.Next()
		h := http.Header{}
		r.Sign(h, sec, now)
		switch r.Provider {
		case Droam:
			if err := providers.VerifyDroam([]string{sec.Droam}, h.Get("X-Hash"), h.Get("X-Timestamp"), now, 300*time.Second); err != nil {
				t.Fatalf("droam signature: %v", err)
			}
		case Roamify:
			if err := providers.VerifyRoamify([]string{sec.Roamify}, r.Body, h.Get("X-Roamify-Signature")); err != nil {
				t.Fatalf("roamify signature: %v", err)
			}
		case Truphone:
			tok := strings.TrimPrefix(r.Path(sec), "/webhooks/truphone/")
			if err := providers.VerifyTruphone([]string{sec.TruphoneToken}, tok, "", "", ""); err != nil {
				t.Fatalf("truphone token: %v", err)
			}
		}
		ev := parse(t, r, now)
		if ev.GetKind() != wantKind[r.Type] {
			t.Fatalf("%s parsed as %v (other: %q), want %v\n%s", r.Type, ev.GetKind(), ev.GetOther().GetReason(), wantKind[r.Type], r.Body)
		}
		if ev.GetIccid() != r.ICCID || !events.ValidKey(r.ICCID) || len(r.ICCID) != 19 || luhn(r.ICCID[:18]) != int(r.ICCID[18]-'0') {
			t.Fatalf("iccid %q (event %q) not valid", r.ICCID, ev.GetIccid())
		}
		if r.Provider != Truphone && !ev.GetOccurredAt().AsTime().Equal(r.At.Truncate(time.Second)) {
			t.Fatalf("occurred at %v, want %v", ev.GetOccurredAt().AsTime(), r.At)
		}
		if r.Type == TypeRoamifyUsage || r.Type == TypeDroamCurrentUsage {
			if u := ev.GetSim().GetUsage().GetUsedBytes(); u != r.UsedBytes {
				t.Fatalf("%s: parsed used %d, generated %d", r.Type, u, r.UsedBytes)
			}
		}
		key := string(r.Body)
		if r.Duplicate {
			dups++
			if !seen[key] {
				t.Fatalf("duplicate of bytes never sent before")
			}
			continue
		}
		if seen[key] {
			t.Fatalf("original request repeats earlier bytes: %s", r.Body)
		}
		seen[key] = true
		types[r.Type]++
		if r.OutOfOrder {
			late++
		}
		if r.UsedBytes >= 0 {
			perSim[r.ICCID] = append(perSim[r.ICCID], point{r.At, r.UsedBytes, r.PeriodID})
		}
	}
	for typ := range wantKind {
		if types[typ] == 0 {
			t.Errorf("no %s generated", typ)
		}
	}
	// Usage never decreases within a period, in provider time.
	for iccid, pts := range perSim {
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].at.Before(pts[j].at) })
		last := map[string]int64{}
		for _, p := range pts {
			if p.used < last[p.period] {
				t.Fatalf("%s: usage went down in period %s: %d after %d", iccid, p.period, p.used, last[p.period])
			}
			last[p.period] = p.used
		}
	}
	within := func(name string, got int, want, tol float64) {
		f := float64(got) / n
		if math.Abs(f-want) > tol {
			t.Errorf("%s share %.4f, want %.3f ± %.3f", name, f, want, tol)
		}
	}
	within("duplicate", dups, 0.03, 0.005)
	within("out-of-order", late, 0.05, 0.006)
}

func TestDaysRollOverAndPackagesRenew(t *testing.T) {
	g := NewGenerator(Config{Sims: 3, Seed: 1, DuplicateRate: -1, OutOfOrderRate: -1}, 0, 1)
	dates := map[string]bool{}
	statuses := map[string]bool{}
	for i := 0; i < 3000; i++ {
		r := g.Next()
		if r.Provider != Roamify {
			continue
		}
		ev := parse(t, r, time.Now())
		for _, d := range ev.GetSim().GetUsage().GetDaily() {
			dates[d.GetDate()] = true
		}
		if r.Type == TypeRoamifyStatus {
			statuses[ev.GetStatus().GetStatusRaw()] = true
		}
	}
	if len(dates) < 20 {
		t.Errorf("only %d distinct usage days", len(dates))
	}
	for _, s := range []string{"ACTIVATED", "DEPLETED"} {
		if !statuses[s] {
			t.Errorf("no %s status seen (have %v)", s, statuses)
		}
	}
}

func TestShardsPartitionTheFleet(t *testing.T) {
	cfg := Config{Sims: 10}
	seen := map[string]bool{}
	for s := 0; s < 3; s++ {
		g := NewGenerator(cfg, s, 3)
		for _, sm := range g.sims {
			if seen[sm.iccid] {
				t.Fatalf("%s in two shards", sm.iccid)
			}
			seen[sm.iccid] = true
		}
	}
	if len(seen) != 10 {
		t.Fatalf("%d sims, want 10", len(seen))
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if math.Abs(float64(got-c.want))/float64(c.want) > 0.02 {
			t.Errorf("q%.2f = %v, want ≈ %v", c.q, got, c.want)
		}
	}
	if h.Max() != 10*time.Millisecond || h.Count() != 10000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}

func TestRunCountsAnswers(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if got.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Event-Position", "1")
	}))
	defer srv.Close()
	var calls atomic.Int64
	sum, err := Run(context.Background(), RunConfig{
		URL: srv.URL, Concurrency: 4, Requests: 500, Gen: Config{Sims: 50},
		OnResponse: func(_ *Request, _ int, _ http.Header, _ time.Time, _ time.Duration) { calls.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 500 || sum.OK != 450 || sum.ByStatus[503] != 50 || calls.Load() != 500 {
		t.Fatalf("summary %+v, callbacks %d", sum, calls.Load())
	}
	if sum.Latency.Count() != 500 || sum.Latency.Quantile(0.99) <= 0 {
		t.Fatalf("latency histogram %d", sum.Latency.Count())
	}
	if !strings.Contains(sum.String(), "503×50") {
		t.Fatalf("summary text:\n%s", sum)
	}
}

func TestRunHoldsTheRate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	sum, err := Run(context.Background(), RunConfig{URL: srv.URL, Concurrency: 4, Rate: 200, Requests: 40})
	if err != nil {
		t.Fatal(err)
	}
	// 40 requests at 200/s are paced over ≈ 200 ms; flat out they take a
	// few ms. Only the pacing is checked, with a wide margin.
	if sum.Elapsed < 150*time.Millisecond {
		t.Fatalf("40 requests at 200/s took only %v", sum.Elapsed)
	}
}
