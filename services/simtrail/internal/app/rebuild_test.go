package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fill publishes n Roamify-like usage snapshots for sims SIMs (growing
// usage, daily rows per location) plus a status change per SIM, straight
// into the stream with async publishes, and returns the last sequence.
func fill(t *testing.T, natsURL string, n, sims int) uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	base := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	used := make([]int64, sims)
	var futures []jetstream.PubAckFuture
	locations := []string{"France", "Spain", "Italy"}
	for i := 0; i < n; i++ {
		s := i % sims
		iccid := fmt.Sprintf("89103%014d", s)
		at := base.Add(time.Duration(i/sims) * 4 * time.Hour)
		ev := &simtrailv1.Event{
			Id:         fmt.Sprintf("%064x", i+1),
			Provider:   simtrailv1.Provider_PROVIDER_ROAMIFY,
			Iccid:      iccid,
			OccurredAt: timestamppb.New(at),
			ReceivedAt: timestamppb.New(at),
		}
		if i < sims {
			ev.Kind = simtrailv1.Kind_KIND_STATUS
			ev.ProviderType = "esim/status"
			ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: "active", StatusRaw: "ACTIVATED"}
			ev.Body = &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{Status: "active", StatusRaw: "ACTIVATED"}}
		} else {
			used[s] += int64(1+i%7) << 20
			allowed := int64(10) << 30
			ev.Kind = simtrailv1.Kind_KIND_USAGE
			ev.ProviderType = "esim/usage"
			ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: "active",
				Period: &simtrailv1.Period{Id: "pkg@1", Start: timestamppb.New(base), End: timestamppb.New(base.Add(90 * 24 * time.Hour))},
				Usage: &simtrailv1.UsageSnapshot{UsedBytes: proto.Int64(used[s]), AllowedBytes: proto.Int64(allowed),
					RemainingBytes: proto.Int64(max(allowed-used[s], 0)),
					Daily:          []*simtrailv1.DailyUsage{{Date: at.Format("2006-01-02"), Location: locations[s%3], DataBytes: used[s] / 4}}}}
			ev.Body = &simtrailv1.Event_Usage{Usage: &simtrailv1.UsageReported{PackageId: "pkg"}}
		}
		data, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		f, err := js.PublishAsync(events.Subject(ev), data)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures)%2000 == 0 {
			// Keep the window of unacknowledged publishes bounded.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				t.Fatal("async publishes did not complete")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		t.Fatal("async publishes did not complete")
	}
	var last uint64
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			last = max(last, ack.Sequence)
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	return last
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestHeavyOnlineRebuildUnderQueries fills the stream with 100k events,
// rebuilds both projections online while a client keeps querying (every
// answer must be a 200 with data), and ends with answers identical to the
// never-rebuilt projections.
//
// It runs in `make test`'s second pass (SIMTRAIL_HEAVY=1, without the race
// detector, which slows SQLite-bound code about tenfold); the race pass
// covers the same code paths with the smaller rebuild tests.
func TestHeavyOnlineRebuildUnderQueries(t *testing.T) {
	if os.Getenv("SIMTRAIL_HEAVY") == "" {
		t.Skip("heavy test: run by make test's second pass (SIMTRAIL_HEAVY=1)")
	}
	const n, sims = 100_000, 500
	a, _ := startDev(t, t.TempDir())
	base := "http://" + a.Addr()
	last := fill(t, a.NATSURL(), n, sims)

	urls := []string{}
	for _, s := range []int{0, 7, 123, 499} {
		iccid := fmt.Sprintf("89103%014d", s)
		urls = append(urls,
			base+"/v1/sims/"+iccid,
			base+"/v1/sims/"+iccid+"/usage?granularity=day&group_by=location",
			base+"/v1/sims/"+iccid+"/events",
			base+"/v1/sims/"+iccid+"/thresholds")
	}
	urls = append(urls, base+"/v1/thresholds?min_percent=10&limit=20")
	minPos := "min_position=" + strconv.FormatUint(last, 10)
	before := map[string][]byte{}
	for _, u := range urls {
		sep := "?"
		if bytes.Contains([]byte(u), []byte("?")) {
			sep = "&"
		}
		// The first read waits (bounded) until both models applied everything.
		var code int
		var body []byte
		deadline := time.Now().Add(2 * time.Minute)
		for {
			code, body = get(t, u+sep+minPos)
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
		}
		if code != 200 {
			t.Fatalf("%s: %d %s", u, code, body)
		}
		before[u] = body
	}

	// A client keeps querying during both rebuilds.
	stop := make(chan struct{})
	var queries, failures atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			u := urls[i%len(urls)]
			code, body := get(t, u)
			queries.Add(1)
			if code != 200 || len(body) < 20 || bytes.Equal(body, []byte("null")) {
				failures.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s: %d %s", u, code, body))
			}
		}
	}()

	for _, name := range []string{"timeline", "thresholds"} {
		started := time.Now()
		resp, err := http.Post(base+"/v1/projections/"+name+"/rebuild", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("rebuild %s: %d", name, resp.StatusCode)
		}
		resp2, _ := http.Post(base+"/v1/projections/"+name+"/rebuild", "application/json", nil)
		io.Copy(io.Discard, resp2.Body)
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusConflict {
			t.Errorf("second rebuild of %s while running: %d, want 409", name, resp2.StatusCode)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			_, body := get(t, base+"/v1/projections")
			if bytes.Contains(body, []byte(`"name":"`+name+`"`)) && rebuildState(body, name) == "done" {
				break
			}
			if rebuildState(body, name) == "failed" || time.Now().After(deadline) {
				t.Fatalf("rebuild %s: %s", name, body)
			}
			time.Sleep(100 * time.Millisecond) // poll interval
		}
		t.Logf("online rebuild of %s: %d events in %s (%.0f events/s)", name, n,
			time.Since(started).Round(time.Millisecond), float64(n)/time.Since(started).Seconds())
	}
	close(stop)
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Errorf("%d of %d queries during the rebuilds failed; first: %v", f, queries.Load(), firstFailure.Load())
	}
	if queries.Load() == 0 {
		t.Error("no query ran during the rebuilds")
	}
	for _, u := range urls {
		code, body := get(t, u)
		if code != 200 || !bytes.Equal(body, before[u]) {
			t.Errorf("%s after rebuild differs:\nbefore %s\nafter  %s", u, before[u], body)
		}
	}
}

// rebuildState digs the rebuild state of one projection out of
// GET /v1/projections without a full decode.
func rebuildState(body []byte, name string) string {
	i := bytes.Index(body, []byte(`"name":"`+name+`"`))
	if i < 0 {
		return ""
	}
	rest := body[i:]
	j := bytes.Index(rest, []byte(`"state":"`))
	if j < 0 {
		return ""
	}
	rest = rest[j+len(`"state":"`):]
	k := bytes.IndexByte(rest, '"')
	return string(rest[:k])
}
