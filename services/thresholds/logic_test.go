package thresholds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// variant reads testdata/<provider>/<file>, applies string replacements and
// parses the result: a synthetic event derived from a documented example.
func variant(t *testing.T, provider, file string, received time.Time, repl ...string) *simtrailv1.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", provider, file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("%s: %q not found", file, repl[i])
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	return parseBytes(t, provider, []byte(s), received)
}

// want is the expected state of one subject's current period.
type want struct {
	percent   *float64
	period    string
	crossed   map[int]string // level → "crossed_at source"
	uncrossed []int
	unlimited bool
	ended     bool
	alerts    []string // rule names
	forecast  bool
	status    string
	imei      string
	outbox    int // outbox rows for this subject over all periods
}

func f64(v float64) *float64 { return &v }

func crossedOf(levels []LevelState) (map[int]string, []int) {
	c := map[int]string{}
	var u []int
	for _, l := range levels {
		if l.Crossed {
			c[l.Percent] = *l.CrossedAt + " " + *l.Source
		} else {
			u = append(u, l.Percent)
		}
	}
	return c, u
}

func checkSIM(t *testing.T, v *SIMView, w want) {
	t.Helper()
	if (v.PercentUsed == nil) != (w.percent == nil) || (v.PercentUsed != nil && *v.PercentUsed != *w.percent) {
		t.Errorf("percent_used = %v, want %v", deref(v.PercentUsed), deref(w.percent))
	}
	if w.period != "" && (v.Period == nil || v.Period.ID != w.period) {
		t.Errorf("period = %+v, want id %s", v.Period, w.period)
	}
	c, u := crossedOf(v.Levels)
	if w.crossed == nil {
		w.crossed = map[int]string{}
	}
	for l, s := range w.crossed {
		if c[l] != s {
			t.Errorf("level %d = %q, want %q", l, c[l], s)
		}
	}
	for l, s := range c {
		if _, ok := w.crossed[l]; !ok {
			t.Errorf("level %d unexpectedly crossed (%s)", l, s)
		}
	}
	if !slices.Equal(u, w.uncrossed) {
		t.Errorf("uncrossed = %v, want %v", u, w.uncrossed)
	}
	if v.Unlimited != w.unlimited {
		t.Errorf("unlimited = %v", v.Unlimited)
	}
	if v.SubscriptionEnded != w.ended {
		t.Errorf("subscription_ended = %v", v.SubscriptionEnded)
	}
	var names []string
	for _, a := range v.Alerts {
		names = append(names, a.RuleName)
	}
	if !slices.Equal(names, w.alerts) {
		t.Errorf("alerts = %v, want %v", names, w.alerts)
	}
	if (v.Forecast != nil) != w.forecast {
		t.Errorf("forecast = %+v, want present=%v", v.Forecast, w.forecast)
	}
	if w.status != "" && (v.Status == nil || *v.Status != w.status) {
		t.Errorf("status = %v, want %s", deref(v.Status), w.status)
	}
	if w.imei != "" && (v.IMEI == nil || *v.IMEI != w.imei) {
		t.Errorf("imei = %v, want %s", deref(v.IMEI), w.imei)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

const (
	roamifyICCID  = "8910300000051234567"
	droamPrepaid  = "8937204016150000018"
	droamSub      = "8937204016150000026"
	truphoneICCID = "8944474600001234567"
	droamPool     = "34f1b2c8-6d9e-4a0b-8c7d-2e5f1a9b3c46"
	roamifyPeriod = "esim-france-7days-3gb-all@1754817120#3221225472"
	droamPlan     = "3f9a1b7e-5c2d-4e8f-a6b0-91d4c7e2f358#5368709120"
	truphoneSub   = "U1VCLTAwMDQ1NjcxMjM="
)

// TestThresholdSequences folds each provider's example sequence (plus
// synthetic variants) and checks the threshold state. Every case is also
// applied in reverse order and shuffled with every event duplicated: the
// result must be identical (order independence, idempotency).
func TestThresholdSequences(t *testing.T) {
	roamifyAll := func(t *testing.T) []*simtrailv1.Event {
		return examples(t, "roamify", "esim.status.01-installed.json", "esim.status.02-activated.json",
			"esim.usage.01.json", "esim.usage.02.json", "esim.usage.03-threshold25.json",
			"esim.usage.04.json", "esim.usage.05.json", "esim.usage.06.json")
	}
	droamAll := func(t *testing.T) []*simtrailv1.Event {
		return examples(t, "droam", "sim_card.assigned_to_end_user.json", "sim_card.first_usage.json",
			"rule.sim_card.status.changed.json", "rule.sim_card.remaining_usage.triggered.json",
			"rule.sim_card.imei.changed.json", "rule.sim_card.date.triggered.json",
			"rule.sim_card.current_usage.triggered.json", "rule.pool.usage.triggered.json")
	}
	truphoneAll := func(t *testing.T) []*simtrailv1.Event {
		return examples(t, "truphone", "DOWNLOAD_PROGRESS.json", "USAGE_THRESHOLD.json", "SUBSCRIPTION_END.json")
	}
	roamify25 := "2025-08-10T18:40:05Z computed"
	droam96 := "2024-06-09T18:44:05Z computed"
	tru80 := "2024-11-10T10:00:00Z provider"

	cases := []struct {
		name  string
		opts  Options
		evs   func(t *testing.T) []*simtrailv1.Event
		iccid string
		want  want
	}{
		{
			name: "roamify crosses 25 at usage 03, nothing more by usage 06", iccid: roamifyICCID, evs: roamifyAll,
			want: want{percent: f64(35.38), period: roamifyPeriod, crossed: map[int]string{25: roamify25},
				uncrossed: []int{50, 75, 80, 90, 100}, forecast: true, status: "active", outbox: 1},
		},
		{
			name: "roamify up to usage 02 crosses nothing", iccid: roamifyICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return examples(t, "roamify", "esim.usage.01.json", "esim.usage.02.json")
			},
			want: want{percent: f64(15.98), period: roamifyPeriod, uncrossed: []int{25, 50, 75, 80, 90, 100}, forecast: true},
		},
		{
			name: "roamify top-up: bigger allowance starts a new period, levels re-arm", iccid: roamifyICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return append(roamifyAll(t),
					variant(t, "roamify", "esim.usage.06.json", epoch, `"timestamp": 1754889120`, `"timestamp": 1754892720`,
						`"allowed_data": 3072`, `"allowed_data": 6144`, `"remaining_data": 1985`, `"remaining_data": 5057`))
			},
			want: want{percent: f64(17.69), period: "esim-france-7days-3gb-all@1754817120#6442450944",
				uncrossed: []int{25, 50, 75, 80, 90, 100}, outbox: 1},
		},
		{
			name: "roamify top-up then 25 of the new allowance: crossed again in the new period", iccid: roamifyICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return append(roamifyAll(t),
					variant(t, "roamify", "esim.usage.06.json", epoch, `"timestamp": 1754889120`, `"timestamp": 1754892720`,
						`"allowed_data": 3072`, `"allowed_data": 6144`, `"remaining_data": 1985`, `"remaining_data": 5057`),
					variant(t, "roamify", "esim.usage.06.json", epoch, `"timestamp": 1754889120`, `"timestamp": 1754896320`,
						`"allowed_data": 3072`, `"allowed_data": 6144`, `"remaining_data": 1985`, `"remaining_data": 4000`))
			},
			want: want{percent: f64(34.9), period: "esim-france-7days-3gb-all@1754817120#6442450944",
				crossed: map[int]string{25: "2025-08-11T07:12:00Z computed"}, uncrossed: []int{50, 75, 80, 90, 100}, forecast: true, outbox: 2},
		},
		{
			name: "roamify new package (new start) re-arms", iccid: roamifyICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return append(roamifyAll(t),
					variant(t, "roamify", "esim.usage.01.json", epoch, `"timestamp": 1754831520`, `"timestamp": 1755500000`,
						`"start": 1754817120`, `"start": 1755490000`))
			},
			want: want{percent: f64(3.84), period: "esim-france-7days-3gb-all@1755490000#3221225472",
				uncrossed: []int{25, 50, 75, 80, 90, 100}, status: "active", outbox: 1},
		},
		{
			name: "roamify unlimited plan: usage without percentages or levels", iccid: roamifyICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return []*simtrailv1.Event{
					variant(t, "roamify", "esim.usage.03-threshold25.json", epoch, `"isUnlimited": false`, `"isUnlimited": true`),
					variant(t, "roamify", "esim.usage.06.json", epoch, `"isUnlimited": false`, `"isUnlimited": true`),
				}
			},
			want: want{period: "esim-france-7days-3gb-all@1754817120", unlimited: true},
		},
		{
			name: "droam prepaid: 96.1% crosses up to 90 at 18:44:05 (computed), rule kept as alert", iccid: droamPrepaid, evs: droamAll,
			want: want{percent: f64(97.14), period: droamPlan,
				crossed:   map[int]string{25: droam96, 50: droam96, 75: droam96, 80: droam96, 90: droam96},
				uncrossed: []int{100}, alerts: []string{"Prepaid: 200 MB left"}, status: "active", imei: "352099001761481", outbox: 5},
		},
		{
			name: "droam prepaid remaining-usage rule alone", iccid: droamPrepaid,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return examples(t, "droam", "rule.sim_card.remaining_usage.triggered.json")
			},
			want: want{percent: f64(96.09), period: droamPlan,
				crossed:   map[int]string{25: droam96, 50: droam96, 75: droam96, 80: droam96, 90: droam96},
				uncrossed: []int{100}, alerts: []string{"Prepaid: 200 MB left"}, imei: "356938035643809", outbox: 5},
		},
		{
			name: "droam prepaid top-up: allowance grows to 6 GiB, new period", iccid: droamPrepaid,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return append(droamAll(t), variant(t, "droam", "rule.sim_card.remaining_usage.triggered.json", epoch,
					`"remaining_usage_kb": 204800`, `"remaining_usage_kb": 1253376`, `"unix_timestamp": 1717958645`, `"unix_timestamp": 1720000000`))
			},
			want: want{percent: f64(80.08), period: "3f9a1b7e-5c2d-4e8f-a6b0-91d4c7e2f358#6442450944",
				crossed: map[int]string{25: "2024-07-03T09:46:40Z computed", 50: "2024-07-03T09:46:40Z computed",
					75: "2024-07-03T09:46:40Z computed", 80: "2024-07-03T09:46:40Z computed"},
				uncrossed: []int{90, 100}, alerts: []string{"Prepaid: 200 MB left", "Prepaid: 200 MB left"}, outbox: 9},
		},
		{
			name: "droam subscription SIM: usage without allowance, no percentages", iccid: droamSub, evs: droamAll,
			want: want{period: "c8e1a3f5-7b9d-4c2e-8a4f-6b0d2e4f6a81", uncrossed: []int{25, 50, 75, 80, 90, 100},
				alerts: []string{"Subscription: 1 GB used"}, imei: "490154203237518"},
		},
		{
			name: "truphone USAGE_THRESHOLD 80 then SUBSCRIPTION_END", iccid: truphoneICCID, evs: truphoneAll,
			want: want{percent: f64(80), period: truphoneSub, ended: true,
				crossed:   map[int]string{25: tru80, 50: tru80, 75: tru80, 80: tru80},
				uncrossed: []int{90, 100}, outbox: 4},
		},
		{
			name: "truphone threshold report and its legacy retry: earliest wins", iccid: truphoneICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return examples(t, "truphone", "USAGE_THRESHOLD.legacy.json", "USAGE_THRESHOLD.json")
			},
			want: want{percent: f64(80), period: truphoneSub,
				crossed:   map[int]string{25: tru80, 50: tru80, 75: tru80, 80: tru80},
				uncrossed: []int{90, 100}, outbox: 4},
		},
		{
			name: "truphone new subscription re-arms and is not ended", iccid: truphoneICCID,
			evs: func(t *testing.T) []*simtrailv1.Event {
				return append(truphoneAll(t), variant(t, "truphone", "USAGE_THRESHOLD.json", time.Date(2024, 11, 20, 0, 0, 0, 0, time.UTC),
					`"U1VCLTAwMDQ1NjcxMjM="`, `"U1VCLTAwMDk5OTk5OTk="`, `"threshold": 80`, `"threshold": 50`))
			},
			want: want{percent: f64(50), period: "U1VCLTAwMDk5OTk5OTk=",
				crossed:   map[int]string{25: "2024-11-20T00:00:00Z provider", 50: "2024-11-20T00:00:00Z provider"},
				uncrossed: []int{75, 80, 90, 100}, outbox: 6},
		},
		{
			name: "custom levels", iccid: droamPrepaid, opts: Options{Levels: []int{10, 95, 97, 100}}, evs: droamAll,
			want: want{percent: f64(97.14), period: droamPlan,
				crossed: map[int]string{10: droam96, 95: droam96, 97: "2024-07-01T00:00:00Z computed"}, uncrossed: []int{100},
				alerts: []string{"Prepaid: 200 MB left"}, outbox: 3},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.evs(t)
			db := build(t, tc.opts, evs...)
			v := simView(t, db, tc.iccid)
			checkSIM(t, v, tc.want)
			ob := outboxRows(t, db)
			n := 0
			for k, c := range ob {
				if c != 1 {
					t.Errorf("outbox %s has %d rows", k, c)
				}
				if strings.HasPrefix(k, tc.iccid+"|") {
					n++
				}
			}
			if n != tc.want.outbox {
				t.Errorf("outbox rows for %s = %d, want %d (%v)", tc.iccid, n, tc.want.outbox, ob)
			}
			inOrder := jsonOf(t, v)

			rev := slices.Clone(evs)
			slices.Reverse(rev)
			if got := jsonOf(t, simView(t, build(t, tc.opts, rev...), tc.iccid)); got != inOrder {
				t.Errorf("reverse order differs:\n%s\nwant\n%s", got, inOrder)
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			dup := append(slices.Clone(evs), evs...)
			rng.Shuffle(len(dup), func(i, j int) { dup[i], dup[j] = dup[j], dup[i] })
			db2 := build(t, tc.opts, dup...)
			if got := jsonOf(t, simView(t, db2, tc.iccid)); got != inOrder {
				t.Errorf("shuffled with duplicates differs:\n%s\nwant\n%s", got, inOrder)
			}
			if ob2 := outboxRows(t, db2); jsonOf(t, ob2) != jsonOf(t, ob) {
				t.Errorf("outbox differs with duplicates: %v vs %v", ob2, ob)
			}
		})
	}
}

func TestPool(t *testing.T) {
	pool := example(t, "droam", "rule.pool.usage.triggered.json")
	t.Run("without configured allowance", func(t *testing.T) {
		v := poolView(t, build(t, Options{}, pool), droamPool)
		if v.PercentUsed != nil || v.AllowedBytes != nil || *v.UsedBytes != 42949672960 || *v.Name != "Nordlys Fleet Pool" {
			t.Errorf("pool = %s", jsonOf(t, v))
		}
		if c, _ := crossedOf(v.Levels); len(c) != 0 || len(v.Alerts) != 1 || v.Alerts[0].RuleName != "Pool 40 GB used" {
			t.Errorf("pool = %s", jsonOf(t, v))
		}
	})
	t.Run("operator allowance 50 GiB enables percentages", func(t *testing.T) {
		opts := Options{PoolAllowances: map[string]int64{droamPool: 50 << 30}}
		db := build(t, opts, pool, pool)
		v := poolView(t, db, droamPool)
		if v.PercentUsed == nil || *v.PercentUsed != 80 || *v.AllowedBytes != 50<<30 {
			t.Errorf("pool = %s", jsonOf(t, v))
		}
		at := "2024-06-24T16:20:00Z computed"
		c, u := crossedOf(v.Levels)
		if jsonOf(t, c) != jsonOf(t, map[int]string{25: at, 50: at, 75: at, 80: at}) || !slices.Equal(u, []int{90, 100}) {
			t.Errorf("levels = %v %v", c, u)
		}
		if len(outboxRows(t, db)) != 4 {
			t.Errorf("outbox = %v", outboxRows(t, db))
		}
	})
}

// synth builds an event directly (provider vs computed cases, which no
// single provider produces).
func synth(id string, at time.Time, used, allowed *int64, percent *int32) *simtrailv1.Event {
	ev := &simtrailv1.Event{Id: id, Provider: simtrailv1.Provider_PROVIDER_TRUPHONE, Kind: simtrailv1.Kind_KIND_USAGE,
		Iccid: "1111", OccurredAt: timestamppb.New(at),
		Sim: &simtrailv1.SimSnapshot{Iccid: "1111", Period: &simtrailv1.Period{Id: "P"},
			Usage: &simtrailv1.UsageSnapshot{UsedBytes: used, AllowedBytes: allowed}}}
	if percent != nil {
		ev.Kind = simtrailv1.Kind_KIND_THRESHOLD
		ev.Body = &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{Percent: percent}}
	}
	return ev
}

func TestProviderVersusComputed(t *testing.T) {
	i64p := func(v int64) *int64 { return &v }
	i32p := func(v int32) *int32 { return &v }
	t1 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Hour), t1.Add(2*time.Hour)
	computed := synth("c", t2, i64p(800), i64p(1000), nil)
	early := synth("p1", t1, nil, i64p(1000), i32p(50))
	late := synth("p2", t3, nil, i64p(1000), i32p(80))
	tie := synth("p3", t2, nil, i64p(1000), i32p(25))
	evs := []*simtrailv1.Event{computed, early, late, tie}
	want := map[int]string{
		25: "2025-01-01T10:00:00Z provider", // earliest showing: the provider report at t1
		50: "2025-01-01T10:00:00Z provider",
		75: "2025-01-01T11:00:00Z computed", // computed at t2 beats the provider report at t3
		80: "2025-01-01T11:00:00Z computed",
	}
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}} {
		var seq []*simtrailv1.Event
		for _, i := range order {
			seq = append(seq, evs[i])
		}
		v := simView(t, build(t, Options{}, seq...), "1111")
		if c, _ := crossedOf(v.Levels); jsonOf(t, c) != jsonOf(t, want) {
			t.Errorf("order %v: levels %v, want %v", order, c, want)
		}
	}
	// A tie on time: the provider source wins.
	v := simView(t, build(t, Options{}, computed, tie), "1111")
	if c, _ := crossedOf(v.Levels); c[25] != "2025-01-01T11:00:00Z provider" || c[50] != "2025-01-01T11:00:00Z computed" {
		t.Errorf("tie: %v", c)
	}
}

func TestForecast(t *testing.T) {
	h := int64(time.Hour)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	cases := []struct {
		name string
		pts  []point
		rem  int64
		want string // exhausts_at, "" for nil
	}{
		{"linear 100 B/h, 1000 left", []point{{base, 0}, {base + h, 100}, {base + 2*h, 200}}, 1000, "2025-01-01T12:00:00Z"},
		{"one point", []point{{base, 100}}, 1000, ""},
		{"flat", []point{{base, 100}, {base + h, 100}}, 1000, ""},
		{"decreasing", []point{{base, 200}, {base + h, 100}}, 1000, ""},
		{"same instant", []point{{base, 100}, {base, 200}}, 1000, ""},
		{"exhausted", []point{{base, 100}, {base + h, 200}}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := forecast(tc.pts, tc.pts[len(tc.pts)-1].at, tc.rem)
			got := ""
			if f != nil {
				got = f.ExhaustsAt
			}
			if got != tc.want {
				t.Errorf("forecast = %+v, want %q", f, tc.want)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, bad := range []Options{
		{Levels: []int{}}, {Levels: []int{0, 50}}, {Levels: []int{50, 101}}, {Levels: []int{50, 25}},
		{Levels: []int{25, 25}}, {PoolAllowances: map[string]int64{"p": 0}},
	} {
		if _, err := NewProjector(bad); err == nil {
			t.Errorf("NewProjector(%+v) accepted", bad)
		}
	}
	p, err := NewProjector(Options{})
	if err != nil || !slices.Equal(p.Levels(), DefaultLevels) {
		t.Fatalf("defaults: %v %v", p.Levels(), err)
	}
}

func TestMarkOutboxPublished(t *testing.T) {
	p := newProjector(t, Options{})
	db := openDB(t, p)
	var seq uint64
	applyAll(t, db, p, &seq, examples(t, "droam", "rule.sim_card.remaining_usage.triggered.json")...) // seq 1: 5 rows
	applyAll(t, db, p, &seq, examples(t, "truphone", "USAGE_THRESHOLD.json")...)                      // seq 2: 4 rows
	ctx := context.Background()
	if err := MarkOutboxPublished(ctx, db.Writer, 1); err != nil {
		t.Fatal(err)
	}
	rows, err := pending(ctx, db.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0].key != truphoneICCID {
		t.Fatalf("pending after mark = %d rows", len(rows))
	}
}

// TestAlertIDPoolAndSIMDiffer: a pool whose id equals an ICCID of the same
// provider gets alert ids of its own, or JetStream would drop one alert
// as the other's duplicate. A SIM's id keeps the documented form.
func TestAlertIDPoolAndSIMDiffer(t *testing.T) {
	const key = "8944000000000000001"
	sim := AlertID("droam", alertSubjectKey(subjectSIM, key), "p1", 50)
	pool := AlertID("droam", alertSubjectKey(subjectPool, key), "p1", 50)
	if sim == pool {
		t.Fatal("pool and SIM with the same key share an alert id")
	}
	sum := sha256.Sum256([]byte("droam|" + key + "|p1|50"))
	if sim != hex.EncodeToString(sum[:]) {
		t.Fatalf("SIM alert id %s is not sha256(provider|key|period|level)", sim)
	}
}
