package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/ingest/providers"
	"github.com/simtrail/simtrail/services/simtrail/internal/app"
	"github.com/simtrail/simtrail/services/thresholds"
)

const (
	droamSecret   = "bb-droam"
	roamifySecret = "bb-roamify"
	truphoneToken = "bb-truphone"
)

// startDev starts the same wiring as `simtrail dev` (embedded JetStream,
// ingest, both projectors, one HTTP listener) on random loopback ports.
func startDev(t *testing.T, dataDir string) (*app.App, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Start(ctx, app.Config{
		Embedded: true, EmbeddedHost: "127.0.0.1", EmbeddedPort: -1, ManageStream: true,
		HTTPAddr: "127.0.0.1:0", DataDir: dataDir,
		Ingest: &ingest.Config{
			DroamSecrets: []string{droamSecret}, RoamifySecrets: []string{roamifySecret},
			TruphoneTokens: []string{truphoneToken},
		},
		Timeline: true, Thresholds: &thresholds.Options{},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("app did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return a, stop
}

type webhook struct{ provider, file string }

var webhooks = []webhook{
	{"roamify", "esim.status.01-installed.json"},
	{"roamify", "esim.status.02-activated.json"},
	{"roamify", "esim.usage.01.json"},
	{"roamify", "esim.usage.02.json"},
	{"roamify", "esim.usage.03-threshold25.json"},
	{"droam", "sim_card.assigned_to_end_user.json"},
	{"droam", "sim_card.first_usage.json"},
	{"droam", "rule.sim_card.status.changed.json"},
	{"droam", "rule.sim_card.remaining_usage.triggered.json"},
	{"droam", "rule.sim_card.imei.changed.json"},
	{"droam", "rule.pool.usage.triggered.json"},
	{"truphone", "USAGE_THRESHOLD.json"},
	{"truphone", "SUBSCRIPTION_END.json"},
}

func post(t *testing.T, base string, w webhook) (int, uint64) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "..", "ingest", "providers", "testdata", w.provider, w.file))
	if err != nil {
		t.Fatal(err)
	}
	url := base + "/webhooks/" + w.provider
	if w.provider == "truphone" {
		url += "/" + truphoneToken
	}
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch w.provider {
	case "droam":
		h, ts := providers.SignDroam(droamSecret, time.Now())
		req.Header.Set("X-Hash", h)
		req.Header.Set("X-Timestamp", ts)
	case "roamify":
		req.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pos, _ := strconv.ParseUint(resp.Header.Get("X-Event-Position"), 10, 64)
	return resp.StatusCode, pos
}

func getJSON(t *testing.T, url string, hdr map[string]string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GET %s: not JSON: %q", url, raw)
	}
	return resp.StatusCode, out, resp.Header
}

// TestDevBlackBox posts signed webhooks over HTTP to the dev wiring, reads
// them back from JetStream with a plain nats.go consumer, queries the read
// models with read-your-writes, and checks that a restart keeps everything.
func TestDevBlackBox(t *testing.T) {
	dataDir := t.TempDir()
	a, stop := startDev(t, dataDir)
	base := "http://" + a.Addr()

	var last uint64
	for _, w := range webhooks {
		code, pos := post(t, base, w)
		if code != 200 || pos == 0 {
			t.Fatalf("%s/%s: status %d position %d", w.provider, w.file, code, pos)
		}
		last = pos
	}

	// A plain subscriber: nats.go, an ordered consumer, protobuf decoding.
	nc, err := nats.Connect(a.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "SIMTRAIL", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"simtrail.events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(webhooks), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	n := 0
	for m := range batch.Messages() {
		ev, err := events.Decode(m.Data())
		if err != nil {
			t.Fatalf("decode %s: %v", m.Subject(), err)
		}
		if events.Subject(ev) != m.Subject() {
			t.Errorf("event subject %s stored on %s", events.Subject(ev), m.Subject())
		}
		if m.Headers().Get("ce-id") != ev.GetId() {
			t.Errorf("ce-id %q != event id %q", m.Headers().Get("ce-id"), ev.GetId())
		}
		seen[events.ProviderName(ev.GetProvider())]++
		n++
	}
	if n != len(webhooks) || seen["roamify"] != 5 || seen["droam"] != 6 || seen["truphone"] != 2 {
		t.Fatalf("read back %d events %v, want %d (5 roamify, 6 droam, 2 truphone)", n, seen, len(webhooks))
	}

	// Read-your-writes on both read models.
	minPos := map[string]string{"X-Min-Position": strconv.FormatUint(last, 10)}
	code, sim, hdr := getJSON(t, base+"/v1/sims/8910300000051234567", minPos)
	if code != 200 || sim["iccid"] != "8910300000051234567" {
		t.Fatalf("summary: %d %v", code, sim)
	}
	if p, _ := strconv.ParseUint(hdr.Get("X-Projection-Position"), 10, 64); p < last {
		t.Errorf("X-Projection-Position %d < %d", p, last)
	}
	code, th, _ := getJSON(t, base+"/v1/sims/8910300000051234567/thresholds", minPos)
	if code != 200 {
		t.Fatalf("thresholds: %d %v", code, th)
	}
	code, _, _ = getJSON(t, base+"/v1/sims/0000000000000000000", nil)
	if code != 404 {
		t.Errorf("unknown SIM: %d", code)
	}
	code, projs, _ := getJSON(t, base+"/v1/projections", nil)
	if code != 200 || len(projs["projections"].([]any)) != 2 {
		t.Errorf("projections: %d %v", code, projs)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body, _ := getJSON(t, base+p, nil); code != 200 {
			t.Errorf("%s: %d %v", p, code, body)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"simtrail_ingest_requests_total", "simtrail_projection_position"} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Restart on the same data directory: nothing lost, nothing re-applied.
	stop()
	a2, _ := startDev(t, dataDir)
	base2 := "http://" + a2.Addr()
	code, sim2, hdr2 := getJSON(t, base2+"/v1/sims/8910300000051234567", minPos)
	if code != 200 {
		t.Fatalf("after restart: %d", code)
	}
	if hdr2.Get("X-Projection-Position") != strconv.FormatUint(last, 10) {
		t.Errorf("position after restart %s, want %d", hdr2.Get("X-Projection-Position"), last)
	}
	a1, _ := json.Marshal(sim)
	b1, _ := json.Marshal(sim2)
	if !bytes.Equal(a1, b1) {
		t.Errorf("summary changed across restart:\n%s\n%s", a1, b1)
	}
	// Posting the same webhook again after the restart stores nothing new.
	if code, pos := post(t, base2, webhooks[0]); code != 200 || pos != 1 {
		t.Errorf("duplicate after restart: status %d position %d, want 200 and 1", code, pos)
	}
}
