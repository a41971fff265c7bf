package timeline_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/ingest/providers"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Truphone sends no event time, so each file gets its own fixed receipt
// time (the doc's timeline: download mid-October, 80 % on 8 November, end
// on 14 November 2024).
var truphoneReceived = map[string]time.Time{
	"DOWNLOAD_PROGRESS.json":       time.Date(2024, 10, 15, 9, 20, 0, 0, time.UTC),
	"USAGE_THRESHOLD.json":         time.Date(2024, 11, 8, 10, 0, 0, 0, time.UTC),
	"USAGE_THRESHOLD.legacy.json":  time.Date(2024, 11, 8, 10, 0, 5, 0, time.UTC),
	"SUBSCRIPTION_END.json":        time.Date(2024, 11, 14, 9, 30, 5, 0, time.UTC),
	"SUBSCRIPTION_END.legacy.json": time.Date(2024, 11, 14, 9, 30, 7, 0, time.UTC),
}

// fixedReceived is the receipt time of droam and Roamify files (their
// provider time is in the body and wins).
var fixedReceived = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// exampleEvents parses every example webhook through the ingest parsers,
// sorted by provider time then id (the "in order" sequence).
func exampleEvents(t testing.TB) []*simtrailv1.Event {
	t.Helper()
	parsers := map[string]func([]byte, time.Time) (providers.Parsed, error){
		"droam": providers.ParseDroam, "roamify": providers.ParseRoamify, "truphone": providers.ParseTruphone,
	}
	var out []*simtrailv1.Event
	for dir, parse := range parsers {
		files, err := filepath.Glob(filepath.Join("testdata", "examples", dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			at := fixedReceived
			if dir == "truphone" {
				var ok bool
				if at, ok = truphoneReceived[filepath.Base(f)]; !ok {
					t.Fatalf("no receipt time for %s", f)
				}
			}
			p, err := parse(raw, at)
			if err != nil {
				t.Fatalf("parse %s: %v", f, err)
			}
			if p.Echo {
				continue // a probe, never stored
			}
			out = append(out, p.Event)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].GetOccurredAt().AsTime(), out[j].GetOccurredAt().AsTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].GetId() < out[j].GetId()
	})
	return out
}

const (
	simPrepaid   = "8937204016150000018"
	simSubscr    = "8937204016150000026"
	simRoamify   = "8910300000051234567"
	simTruphone  = "8944474600001234567"
	simUnknown   = "8900000000000000000"
	simRoamPath  = "/v1/sims/" + simRoamify
	simDroamPath = "/v1/sims/" + simPrepaid
)

var exampleSIMs = []string{simPrepaid, simSubscr, simRoamify, simTruphone}

var extraQueries = map[string][]string{
	simRoamify: {
		simRoamPath + "/usage?granularity=hour&from=2025-08-10T12:00:00Z&to=2025-08-11T06:00:00Z",
		simRoamPath + "/usage?from=2025-08-09&to=2025-08-13&group_by=location",
		simRoamPath + "/usage?from=2025-08-11&to=2025-08-12",
		simRoamPath + "/usage?from=2025-08-10T15:30:00%2B02:00",
		simRoamPath + "/events?from=2025-08-10T09:10:00Z&to=2025-08-11T00:00:00Z",
	},
	simPrepaid: {
		simDroamPath + "/usage?granularity=hour&from=2024-06-01T12:00:00Z&to=2024-06-01T16:00:00Z",
		simDroamPath + "/usage?granularity=day&from=2024-06-08&to=2024-06-12",
		simDroamPath + "/events?kind=imei",
	},
}

// errorQueries must answer 404/400 with a JSON error body.
var errorQueries = []string{
	"/v1/sims/" + simUnknown,
	"/v1/sims/" + simUnknown + "/usage",
	"/v1/sims/" + simUnknown + "/events",
	"/v1/sims/not-an-iccid",
	simRoamPath + "/usage?granularity=week",
	simRoamPath + "/usage?group_by=country",
	simRoamPath + "/usage?from=yesterday",
	simRoamPath + "/usage?to=2025-13-01",
	simRoamPath + "/usage?from=2025-08-12&to=2025-08-11",
	simRoamPath + "/usage?granularity=hour&from=2020-01-01&to=2025-01-01",
	simRoamPath + "/events?limit=0",
	simRoamPath + "/events?limit=501",
	simRoamPath + "/events?limit=ten",
	simRoamPath + "/events?kind=usage",
	simRoamPath + "/events?cursor=bm90LWEtY3Vyc29y",
	simRoamPath + "/events?cursor=%25%25",
	simRoamPath + "/events?from=2025-08-11&to=2025-08-11",
	simRoamPath + "?min_position=abc",
}

// TestGolden feeds the example webhooks to a real JetStream and projector
// in several orders (and every event twice) and compares every endpoint's
// answers with the same golden files.
func TestGolden(t *testing.T) {
	evs := exampleEvents(t)
	if len(evs) < 20 {
		t.Fatalf("only %d example events", len(evs))
	}
	type item struct {
		ev     *simtrailv1.Event
		withID bool
	}
	orders := map[string][]item{}
	var inOrder, reversed, shuffled, doubled []item
	for _, ev := range evs {
		inOrder = append(inOrder, item{ev, true})
	}
	reversed = slices.Clone(inOrder)
	slices.Reverse(reversed)
	shuffled = slices.Clone(inOrder)
	rng := rand.New(rand.NewPCG(42, 7))
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// Every event twice, in shuffled order; the second copy has no
	// Nats-Msg-Id so the log really holds both.
	for _, ev := range evs {
		doubled = append(doubled, item{ev, true}, item{ev, false})
	}
	rng.Shuffle(len(doubled), func(i, j int) { doubled[i], doubled[j] = doubled[j], doubled[i] })
	seen := map[string]bool{}
	for i := range doubled {
		id := doubled[i].ev.GetId()
		doubled[i].withID = !seen[id]
		seen[id] = true
	}
	orders["1_in_order"], orders["2_reversed"], orders["3_shuffled"], orders["4_doubled"] = inOrder, reversed, shuffled, doubled

	names := []string{"1_in_order", "2_reversed", "3_shuffled", "4_doubled"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s := natstest.Run(t)
			s.Stream(t)
			_, js := s.Conn(t)
			var last uint64
			for _, it := range orders[name] {
				last = publish(t, js, it.ev, it.withID)
			}
			if want := uint64(len(orders[name])); last != want {
				t.Fatalf("stream holds %d messages, want %d", last, want)
			}
			h := startProjection(t, js, filepath.Join(t.TempDir(), "timeline.db"), "timeline")
			h.waitFor(t, last)

			resps := queryAll(t, h.url, exampleSIMs, extraQueries)
			for _, q := range errorQueries {
				st, body := get(t, h.url, q)
				resps = append(resps, response{name: "error_" + fileName(q), path: q, status: st, body: body})
				if st != 400 && st != 404 {
					t.Errorf("GET %s: status %d, want 400 or 404", q, st)
				}
				if !bytes.Contains(body, []byte(`"code"`)) {
					t.Errorf("GET %s: no error code in %s", q, body)
				}
			}
			for _, r := range resps {
				got := goldenDoc(t, r)
				path := goldenPath(r.name)
				if *update && name == names[0] {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("GET %s differs from %s:\n--- got\n%s\n--- want\n%s", r.path, path, got, want)
				}
			}
			if *update && name == names[0] {
				pruneGolden(t, resps)
			}
		})
	}
}

// goldenDoc is the golden file content: the request, the status and the
// body, as indented JSON.
func goldenDoc(t *testing.T, r response) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(struct {
		Request string          `json:"request"`
		Status  int             `json:"status"`
		Body    json.RawMessage `json:"body"`
	}{"GET " + r.path, r.status, r.body}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pruneGolden removes golden files no query produces any more.
func pruneGolden(t *testing.T, resps []response) {
	keep := map[string]bool{}
	for _, r := range resps {
		keep[goldenPath(r.name)] = true
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	for _, f := range files {
		if !keep[f] && strings.HasSuffix(f, ".json") {
			_ = os.Remove(f)
		}
	}
}

// TestOnlineRebuild rebuilds the read model beside the live one (the shared
// runner's rebuild, using the same Projector concurrently) and checks that
// the swapped-in model answers exactly the golden files.
func TestOnlineRebuild(t *testing.T) {
	evs := exampleEvents(t)
	s := natstest.Run(t)
	s.Stream(t)
	_, js := s.Conn(t)
	var last uint64
	for i := len(evs) - 1; i >= 0; i-- {
		last = publish(t, js, evs[i], true)
	}
	h := startProjection(t, js, filepath.Join(t.TempDir(), "timeline.db"), "timeline")
	h.waitFor(t, last)
	old := h.runner.DB()
	if err := h.runner.StartRebuild(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := h.runner.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Rebuild.State == "done" {
			break
		}
		if st.Rebuild.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("rebuild %s: %s", st.Rebuild.State, st.Rebuild.Error)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if h.runner.DB() == old {
		t.Fatal("rebuild did not swap the read model")
	}
	for _, r := range queryAll(t, h.url, exampleSIMs, extraQueries) {
		want, err := os.ReadFile(goldenPath(r.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := goldenDoc(t, r); !bytes.Equal(got, want) {
			t.Errorf("after rebuild GET %s:\n%s\nwant\n%s", r.path, got, want)
		}
	}
}

// TestPoisonSkipped: a payload that is not an event is recorded as poison
// and skipped; the events around it are applied.
func TestPoisonSkipped(t *testing.T) {
	evs := exampleEvents(t)
	s := natstest.Run(t)
	s.Stream(t)
	_, js := s.Conn(t)
	publish(t, js, evs[0], true)
	if _, err := js.Publish(t.Context(), "simtrail.events.usage.droam."+simPrepaid, []byte("not protobuf \xff\xff")); err != nil {
		t.Fatal(err)
	}
	last := publish(t, js, evs[1], true)
	h := startProjection(t, js, filepath.Join(t.TempDir(), "timeline.db"), "timeline")
	h.waitFor(t, last)
	poison, total, err := projection.ListPoison(t.Context(), h.runner.DB().Reader, 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || poison[0].Seq != 2 {
		t.Fatalf("poison %+v (total %d)", poison, total)
	}
	for _, ev := range evs[:2] {
		if st, body := get(t, h.url, "/v1/sims/"+ev.GetIccid()); st != 200 {
			t.Errorf("SIM %s: %d %s", ev.GetIccid(), st, body)
		}
	}
}
