package alertwatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/natsx"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"github.com/simtrail/simtrail/services/alertwatcher"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// recorder is a Notifier that records alerts and fails on command.
type recorder struct {
	mu        sync.Mutex
	attempts  map[string]int
	delivered map[string]int
	order     []string
	failFirst map[string]int // id → failures before success
	failAll   map[string]bool
}

func newRecorder() *recorder {
	return &recorder{attempts: map[string]int{}, delivered: map[string]int{}, failFirst: map[string]int{}, failAll: map[string]bool{}}
}

func (r *recorder) Notify(_ context.Context, a alertwatcher.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts[a.ID]++
	if r.failAll[a.ID] {
		return errors.New("pager service rejects this alert")
	}
	if r.attempts[a.ID] <= r.failFirst[a.ID] {
		return errors.New("pager service busy")
	}
	r.delivered[a.ID]++
	r.order = append(r.order, a.ID)
	return nil
}

func (r *recorder) snapshot() (attempts, delivered map[string]int, order []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	attempts, delivered = map[string]int{}, map[string]int{}
	for k, v := range r.attempts {
		attempts[k] = v
	}
	for k, v := range r.delivered {
		delivered[k] = v
	}
	return attempts, delivered, append([]string(nil), r.order...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publishAlert stores a ThresholdCrossed as the thresholds projector does.
func publishAlert(t *testing.T, js jetstream.JetStream, id, iccid string, level int32) {
	t.Helper()
	used, allowed := int64(level)*10<<20, int64(1000)<<20
	a := &simtrailv1.ThresholdCrossed{
		Id: id, Provider: simtrailv1.Provider_PROVIDER_ROAMIFY, Iccid: iccid, PeriodId: "pkg-1",
		LevelPercent: level, Source: "computed", CrossedAt: timestamppb.New(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)),
		UsedBytes: &used, AllowedBytes: &allowed, CauseSequence: 7, CauseEventId: "cafe",
	}
	data, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, js, events.AlertSubject("threshold", a.GetProvider(), iccid), data, map[string]string{
		events.HeaderMsgID:       id,
		events.HeaderContentType: events.ContentType,
		events.HeaderSpecVersion: "1.0",
		events.HeaderID:          id,
		events.HeaderSource:      "/simtrail/thresholds",
		events.HeaderType:        "io.simtrail.alert.threshold.v1",
		events.HeaderSubject:     iccid,
		events.HeaderTime:        a.GetCrossedAt().AsTime().Format(time.RFC3339Nano),
	})
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte, hdr map[string]string) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// startService runs an alertwatcher against srv; stop cancels it and checks
// that Run returned cleanly.
func startService(t *testing.T, srv *natstest.Server, n alertwatcher.Notifier) (stop func()) {
	t.Helper()
	subConn, _ := srv.Conn(t)
	pubConn, _ := srv.Conn(t)
	setup, cancelSetup := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelSetup()
	svc, err := alertwatcher.New(setup, subConn, pubConn, n, alertwatcher.Config{
		MaxRetries:   2,
		RetryInitial: time.Millisecond,
		RetryMax:     5 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Running():
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("router not running after 10s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(40 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestAlertWatcherEndToEnd(t *testing.T) {
	srv := natstest.Run(t)
	_, js := srv.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}

	rec := newRecorder()
	rec.failFirst["a3"] = 2 // succeeds on the third attempt (2 retries)
	rec.failAll["a4"] = true

	publishAlert(t, js, "a1", "8944000000000000001", 50)
	publishAlert(t, js, "a2", "8944000000000000002", 80)
	publishAlert(t, js, "a3", "8944000000000000003", 90)
	publishAlert(t, js, "a4", "8944000000000000004", 100)
	publishRaw(t, js, "simtrail.alerts.threshold.droam.8944000000000000005", []byte{0xff, 0xff, 0xff},
		map[string]string{events.HeaderMsgID: "garbage"})
	publishAlert(t, js, "a5", "8944000000000000006", 25)
	// Events on other subjects are not the watcher's business.
	publishRaw(t, js, "simtrail.events.usage.roamify.8944000000000000001", []byte("ignored"), nil)

	stop := startService(t, srv, rec)
	waitFor(t, "a5 notified", func() bool { _, d, _ := rec.snapshot(); return d["a5"] == 1 })

	// Both poison messages are in the stream under the dead-letter subject.
	dead := readSubject(t, js, alertwatcher.DefaultPoisonTopic, 2)
	if got := dead[0].Headers().Get("Simtrail-Subject"); got != "simtrail.alerts.threshold.roamify.8944000000000000004" {
		t.Errorf("first dead letter from %q", got)
	}
	if r := dead[0].Headers().Get("reason_poisoned"); !strings.Contains(r, "pager service rejects this alert") {
		t.Errorf("reason_poisoned = %q", r)
	}
	if a, err := decodeAlert(dead[0].Data()); err != nil || a.GetId() != "a4" {
		t.Errorf("dead letter payload is not the original alert: %v %v", a, err)
	}
	if id := dead[0].Headers().Get(events.HeaderMsgID); id == "a4" || id == "" {
		t.Errorf("dead letter Nats-Msg-Id = %q; must differ from the alert's or JetStream drops it as a duplicate", id)
	}
	if h := dead[0].Headers(); h.Get(events.HeaderType) != "io.simtrail.alert.threshold.v1" || h.Get("topic_poisoned") != alertwatcher.DefaultTopic {
		t.Errorf("dead letter headers = %v", h)
	}
	if r := dead[1].Headers().Get("reason_poisoned"); !strings.Contains(r, "decode simtrail message") {
		t.Errorf("garbage reason_poisoned = %q", r)
	}
	if !bytes.Equal(dead[1].Data(), []byte{0xff, 0xff, 0xff}) {
		t.Errorf("garbage payload changed: %x", dead[1].Data())
	}

	// Nothing is left unacknowledged.
	waitFor(t, "consumer drained", func() bool {
		c, err := stream.PushConsumer(ctx, alertwatcher.DefaultDurable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
	stop()

	attempts, delivered, order := rec.snapshot()
	wantDelivered := map[string]int{"a1": 1, "a2": 1, "a3": 1, "a5": 1}
	for id, n := range wantDelivered {
		if delivered[id] != n {
			t.Errorf("%s notified %d times, want %d", id, delivered[id], n)
		}
	}
	if delivered["a4"] != 0 || len(delivered) != len(wantDelivered) {
		t.Errorf("delivered = %v", delivered)
	}
	if attempts["a3"] != 3 || attempts["a4"] != 3 || attempts["a1"] != 1 {
		t.Errorf("attempts = %v; want a3 and a4 tried 1+2 times, a1 once", attempts)
	}
	if strings.Join(order, ",") != "a1,a2,a3,a5" {
		t.Errorf("order = %v", order)
	}

	// A restart resumes the durable: nothing is notified twice, the next
	// alert is.
	stop = startService(t, srv, rec)
	publishAlert(t, js, "a6", "8944000000000000007", 75)
	waitFor(t, "a6 notified", func() bool { _, d, _ := rec.snapshot(); return d["a6"] == 1 })
	stop()
	_, delivered, _ = rec.snapshot()
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("after restart %s notified %d times", id, n)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Subjects[0] != events.StreamSubjects || len(info.Config.Subjects) != 1 {
		t.Errorf("stream subjects changed: %v", info.Config.Subjects)
	}
}

func decodeAlert(b []byte) (*simtrailv1.ThresholdCrossed, error) {
	a := &simtrailv1.ThresholdCrossed{}
	return a, proto.Unmarshal(b, a)
}

// readSubject reads the first n messages stored on subject, with a deadline.
func readSubject(t *testing.T, js jetstream.JetStream, subject string, n int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for len(out) < n {
		m, err := c.Next(jetstream.FetchMaxWait(15 * time.Second))
		if err != nil {
			t.Fatalf("read %s: got %d of %d: %v", subject, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

func TestWebhookNotifier(t *testing.T) {
	var (
		mu     sync.Mutex
		status = http.StatusOK
		got    alertwatcher.Alert
		idem   string
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewDecoder(r.Body).Decode(&got)
		idem = r.Header.Get("Idempotency-Key")
		w.WriteHeader(status)
	}))
	defer ts.Close()
	n := alertwatcher.NewWebhookNotifier(ts.URL)
	a := alertwatcher.Alert{ID: "x1", Provider: "droam", ICCID: "8944", LevelPercent: 90, Source: "provider"}

	tests := []struct {
		status        int
		wantErr, perm bool
	}{
		{http.StatusOK, false, false},
		{http.StatusNoContent, false, false},
		{http.StatusServiceUnavailable, true, false},
		{http.StatusTooManyRequests, true, false},
		{http.StatusBadRequest, true, true},
		{http.StatusNotFound, true, true},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			mu.Lock()
			status = tt.status
			mu.Unlock()
			err := n.Notify(context.Background(), a)
			if (err != nil) != tt.wantErr || errors.Is(err, alertwatcher.ErrPermanent) != tt.perm {
				t.Fatalf("err = %v, want error %v permanent %v", err, tt.wantErr, tt.perm)
			}
			mu.Lock()
			defer mu.Unlock()
			if got.ID != "x1" || got.LevelPercent != 90 || idem != "x1" {
				t.Errorf("server got %+v, Idempotency-Key %q", got, idem)
			}
		})
	}
}

func TestWriterNotifier(t *testing.T) {
	var buf bytes.Buffer
	n := alertwatcher.NewWriterNotifier(&buf)
	for _, id := range []string{"a", "b"} {
		if err := n.Notify(context.Background(), alertwatcher.Alert{ID: id, Provider: "truphone"}); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"id":"b"`) {
		t.Fatalf("lines = %q", lines)
	}
}
