package thresholds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
)

// service is the thresholds projector wired the way the simtrail command
// wires it: runner, publisher as AfterCommit, query API.
type service struct {
	r   *projection.Runner
	pub *Publisher
	srv *httptest.Server
}

func startService(t *testing.T, js jetstream.JetStream, dbPath string, opts Options) *service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := newProjector(t, opts)
	db, err := projection.Open(ctx, dbPath, p.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	s := &service{}
	r, err := projection.NewRunner(ctx, p, db, js, projection.Config{Logger: log, AfterCommit: func(uint64) { s.pub.Notify() }})
	if err != nil {
		t.Fatal(err)
	}
	s.r = r
	s.pub = NewPublisher(r, js, log)
	done := make(chan struct{}, 2)
	go func() { _ = r.Run(ctx); done <- struct{}{} }()
	go func() { _ = s.pub.Run(ctx); done <- struct{}{} }()
	e := httpx.NewEcho(log)
	Routes(e, r)
	s.srv = httptest.NewServer(e)
	t.Cleanup(func() {
		s.srv.Close()
		cancel()
		<-done
		<-done
		db.Close()
	})
	return s
}

// publishEvents stores evs on the stream; withID sends Nats-Msg-Id (so
// JetStream deduplicates), without it every copy is really stored.
func publishEvents(t testing.TB, js jetstream.JetStream, evs []*simtrailv1.Event, withID bool) uint64 {
	t.Helper()
	ctx := context.Background()
	var last uint64
	for _, ev := range evs {
		m := eventMsg(t, ev)
		if !withID {
			m.Header.Del(events.HeaderMsgID)
		}
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	return last
}

// eventMsg is ev as ingest stores it: subject, payload and headers.
func eventMsg(t testing.TB, ev *simtrailv1.Event) *nats.Msg {
	t.Helper()
	data, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(events.Subject(ev))
	m.Data = data
	for k, v := range events.Headers(ev) {
		m.Header.Set(k, v)
	}
	return m
}

func getJSON(t testing.TB, url string, out any) (int, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode, resp.Header
}

// readAlerts reads every stored derived alert with a plain ordered consumer.
func readAlerts(t testing.TB, js jetstream.JetStream) []*simtrailv1.ThresholdCrossed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("simtrail.alerts.threshold.>"))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range info.State.Subjects {
		total += int(n)
	}
	if total == 0 {
		return nil
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"simtrail.alerts.threshold.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*simtrailv1.ThresholdCrossed
	for len(out) < total {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read alerts (%d of %d): %v", len(out), total, err)
		}
		tc := &simtrailv1.ThresholdCrossed{}
		if err := proto.Unmarshal(m.Data(), tc); err != nil {
			t.Fatal(err)
		}
		key := tc.GetIccid() + tc.GetPoolId()
		if want := events.AlertSubject("threshold", tc.GetProvider(), key); m.Subject() != want {
			t.Errorf("alert on %s, want %s", m.Subject(), want)
		}
		idKey := tc.GetIccid()
		if tc.GetPoolId() != "" {
			idKey = "pool:" + tc.GetPoolId()
		}
		if m.Headers().Get(events.HeaderMsgID) != tc.GetId() || tc.GetId() != AlertID(events.ProviderName(tc.GetProvider()), idKey, tc.GetPeriodId(), int(tc.GetLevelPercent())) {
			t.Errorf("alert id/header mismatch: %s / %s", tc.GetId(), m.Headers().Get(events.HeaderMsgID))
		}
		if m.Headers().Get(events.HeaderType) != AlertCEType || m.Headers().Get(events.HeaderContentType) != events.ContentType {
			t.Errorf("alert headers %v", m.Headers())
		}
		out = append(out, tc)
	}
	return out
}

func alertKey(a *simtrailv1.ThresholdCrossed) string {
	return a.GetIccid() + a.GetPoolId() + "|" + a.GetPeriodId() + "|" + strconv.Itoa(int(a.GetLevelPercent()))
}

// waitOutboxDrained polls until the outbox has nothing pending.
func waitOutboxDrained(t testing.TB, s *service) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := pending(context.Background(), s.r.DB().Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still has %d pending rows", len(rows))
		}
		s.pub.Notify()
		time.Sleep(10 * time.Millisecond) // poll interval only
	}
}

func TestBlackBox(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	_, js := ns.Conn(t)
	opts := Options{PoolAllowances: map[string]int64{droamPool: 50 << 30}}
	s := startService(t, js, filepath.Join(t.TempDir(), "thresholds.db"), opts)
	evs := allExamples(t)
	last := publishEvents(t, js, evs, true)
	base := s.srv.URL

	var roam SIMView
	code, hdr := getJSON(t, fmt.Sprintf("%s/v1/sims/%s/thresholds?min_position=%d", base, roamifyICCID, last), &roam)
	if code != 200 || hdr.Get(projection.HeaderPosition) != strconv.FormatUint(last, 10) {
		t.Fatalf("roamify: %d %v", code, hdr)
	}
	checkSIM(t, &roam, want{percent: f64(35.38), period: roamifyPeriod, crossed: map[int]string{25: "2025-08-10T18:40:05Z computed"},
		uncrossed: []int{50, 75, 80, 90, 100}, forecast: true, status: "active"})
	if roam.Period.Start == nil || *roam.Period.Start != "2025-08-10T09:12:00Z" || roam.Period.AsOf != "2025-08-11T05:12:00Z" || roam.Provider != "roamify" {
		t.Errorf("roamify period %+v", roam.Period)
	}

	for name, path := range map[string]string{
		"sim_roamify":        "/v1/sims/" + roamifyICCID + "/thresholds",
		"sim_droam_prepaid":  "/v1/sims/" + droamPrepaid + "/thresholds",
		"sim_droam_pooled":   "/v1/sims/" + droamSub + "/thresholds",
		"sim_truphone":       "/v1/sims/" + truphoneICCID + "/thresholds",
		"fleet":              "/v1/thresholds",
		"fleet_min50_limit1": "/v1/thresholds?min_percent=50&limit=1",
		"pool":               "/v1/pools/" + droamPool,
		"sim_unknown":        "/v1/sims/0000/thresholds",
	} {
		checkGolden(t, base, path, name)
	}

	var dro SIMView
	getJSON(t, base+"/v1/sims/"+droamPrepaid+"/thresholds", &dro)
	d96 := "2024-06-09T18:44:05Z computed"
	checkSIM(t, &dro, want{percent: f64(97.14), period: droamPlan, crossed: map[int]string{25: d96, 50: d96, 75: d96, 80: d96, 90: d96},
		uncrossed: []int{100}, alerts: []string{"Prepaid: 200 MB left"}, status: "active", imei: "352099001761481"})

	var tru SIMView
	getJSON(t, base+"/v1/sims/"+truphoneICCID+"/thresholds", &tru)
	t80 := "2024-11-10T10:00:00Z provider"
	checkSIM(t, &tru, want{percent: f64(80), period: truphoneSub, ended: true, crossed: map[int]string{25: t80, 50: t80, 75: t80, 80: t80},
		uncrossed: []int{90, 100}})

	var fleet FleetView
	getJSON(t, base+"/v1/thresholds", &fleet)
	var order []string
	for _, f := range fleet.SIMs {
		order = append(order, f.ICCID)
	}
	if jsonOf(t, order) != jsonOf(t, []string{droamPrepaid, truphoneICCID, roamifyICCID, droamSub}) || fleet.NextCursor != nil {
		t.Errorf("fleet order %v", order)
	}
	if *fleet.SIMs[0].LastLevel != 90 || *fleet.SIMs[1].LastLevel != 80 || *fleet.SIMs[2].LastLevel != 25 || fleet.SIMs[3].LastLevel != nil {
		t.Errorf("fleet = %s", jsonOf(t, fleet))
	}
	// Filters and pagination.
	getJSON(t, base+"/v1/thresholds?min_percent=50&limit=1", &fleet)
	if len(fleet.SIMs) != 1 || fleet.SIMs[0].ICCID != droamPrepaid || fleet.NextCursor == nil {
		t.Fatalf("page 1 = %s", jsonOf(t, fleet))
	}
	getJSON(t, base+"/v1/thresholds?min_percent=50&limit=1&cursor="+*fleet.NextCursor, &fleet)
	if len(fleet.SIMs) != 1 || fleet.SIMs[0].ICCID != truphoneICCID {
		t.Fatalf("page 2 = %s", jsonOf(t, fleet))
	}
	if fleet.NextCursor != nil {
		getJSON(t, base+"/v1/thresholds?min_percent=50&limit=1&cursor="+*fleet.NextCursor, &fleet)
		if len(fleet.SIMs) != 0 || fleet.NextCursor != nil {
			t.Fatalf("page 3 = %s", jsonOf(t, fleet))
		}
	}
	getJSON(t, base+"/v1/thresholds?provider=roamify&status=active", &fleet)
	if len(fleet.SIMs) != 1 || fleet.SIMs[0].ICCID != roamifyICCID {
		t.Errorf("provider filter = %s", jsonOf(t, fleet))
	}

	var pool PoolView
	getJSON(t, base+"/v1/pools/"+droamPool, &pool)
	if pool.PercentUsed == nil || *pool.PercentUsed != 80 || len(pool.Alerts) != 1 || pool.Provider != "droam" || *pool.AsOf != "2024-06-24T16:20:00Z" {
		t.Errorf("pool = %s", jsonOf(t, pool))
	}

	// Errors are JSON with the documented codes.
	for url, wantCode := range map[string]int{
		"/v1/sims/0000/thresholds":                404,
		"/v1/pools/nope":                          404,
		"/v1/thresholds?min_percent=101":          400,
		"/v1/thresholds?min_percent=x":            400,
		"/v1/thresholds?provider=acme":            400,
		"/v1/thresholds?status=Active!":           400,
		"/v1/thresholds?limit=0":                  400,
		"/v1/thresholds?limit=501":                400,
		"/v1/thresholds?cursor=!!!":               400,
		"/v1/thresholds?cursor=bm9wZQ":            400,
		"/v1/thresholds?min_position=abc":         400,
		"/v1/sims/8910300000051234567/thresholds": 200,
	} {
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		code, _ := getJSON(t, base+url, &body)
		if code != wantCode || (code != 200 && body.Error.Code == "") {
			t.Errorf("GET %s = %d %+v, want %d", url, code, body, wantCode)
		}
	}

	// Derived alerts: exactly one per (subject, period, level).
	waitOutboxDrained(t, s)
	check := func() {
		t.Helper()
		alerts := readAlerts(t, js)
		seen := map[string]int{}
		for _, a := range alerts {
			seen[alertKey(a)]++
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("alert %s published %d times", k, n)
			}
		}
		// droam prepaid 25..90 (5), pool 25..80 (4), Roamify 25 (1), Truphone 25..80 (4).
		if len(alerts) != 14 {
			t.Errorf("%d alerts, want 14: %v", len(alerts), seen)
		}
	}
	check()

	// Replaying every event again (really stored twice) adds no alert and
	// changes no answer.
	before := jsonOf(t, dro) + jsonOf(t, roam) + jsonOf(t, tru)
	last = publishEvents(t, js, evs, false)
	var d2, r2, t2 SIMView
	getJSON(t, fmt.Sprintf("%s/v1/sims/%s/thresholds?min_position=%d", base, droamPrepaid, last), &d2)
	getJSON(t, base+"/v1/sims/"+roamifyICCID+"/thresholds", &r2)
	getJSON(t, base+"/v1/sims/"+truphoneICCID+"/thresholds", &t2)
	if after := jsonOf(t, d2) + jsonOf(t, r2) + jsonOf(t, t2); after != before {
		t.Errorf("replay changed answers:\n%s\nwas\n%s", after, before)
	}
	waitOutboxDrained(t, s)
	check()
}
