package timeline

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/httpx"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSnapshotDeltas(t *testing.T) {
	snap := func(at string, used int64, period string) Snapshot {
		return Snapshot{At: ts(at), EventID: at, Used: used, PeriodID: period}
	}
	tests := []struct {
		name  string
		prev  *Snapshot
		snaps []Snapshot
		want  []int64
	}{
		{"empty", nil, nil, []int64{}},
		{"first counts in full", nil, []Snapshot{snap("2025-01-01T10:00:00Z", 100, "p")}, []int64{100}},
		{"differences", nil, []Snapshot{
			snap("2025-01-01T10:00:00Z", 100, "p"), snap("2025-01-01T11:00:00Z", 150, "p"), snap("2025-01-01T12:00:00Z", 150, "p"),
		}, []int64{100, 50, 0}},
		{"prev before range", ptr(snap("2025-01-01T09:00:00Z", 80, "p")), []Snapshot{snap("2025-01-01T10:00:00Z", 100, "p")}, []int64{20}},
		{"drop is a reset", nil, []Snapshot{snap("2025-01-01T10:00:00Z", 100, "p"), snap("2025-01-02T10:00:00Z", 30, "p")}, []int64{100, 30}},
		{"new period is a reset", nil, []Snapshot{snap("2025-01-01T10:00:00Z", 100, "p"), snap("2025-01-02T10:00:00Z", 130, "q")}, []int64{100, 130}},
		{"unknown period is not a reset", nil, []Snapshot{snap("2025-01-01T10:00:00Z", 100, "p"), snap("2025-01-02T10:00:00Z", 130, "")}, []int64{100, 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []int64{}
			for _, d := range SnapshotDeltas(tt.prev, tt.snaps) {
				got = append(got, d.Bytes)
				if d.Location != UnknownLocation {
					t.Errorf("location %q", d.Location)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestBucketDeltas(t *testing.T) {
	deltas := []Delta{
		{At: ts("2025-08-10T13:12:00Z"), Bytes: 10, Location: "France"},
		{At: ts("2025-08-10T13:59:59Z"), Bytes: 5, Location: "Spain"},
		{At: ts("2025-08-10T15:00:00Z"), Bytes: 7, Location: "France"},
		{At: ts("2025-08-10T16:00:00Z"), Bytes: 100, Location: "France"}, // at to: excluded
		{At: ts("2025-08-10T11:00:00Z"), Bytes: 100, Location: "France"}, // before from
	}
	from, to := ts("2025-08-10T12:00:00Z"), ts("2025-08-10T16:00:00Z")
	b, total := BucketDeltas(Hour, from, to, deltas, false)
	var got []int64
	for _, x := range b {
		got = append(got, x.DataBytes)
	}
	if want := []int64{0, 15, 0, 7}; !reflect.DeepEqual(got, want) || total != 22 {
		t.Fatalf("dense: got %v total %d", got, total)
	}
	if b[1].Start != "2025-08-10T13:00:00Z" || b[1].End != "2025-08-10T14:00:00Z" {
		t.Errorf("bucket bounds %s %s", b[1].Start, b[1].End)
	}
	b, total = BucketDeltas(Hour, from, to, deltas, true)
	type row struct {
		start, loc string
		n          int64
	}
	var rows []row
	for _, x := range b {
		rows = append(rows, row{x.Start, *x.Location, x.DataBytes})
	}
	want := []row{{"2025-08-10T13:00:00Z", "France", 10}, {"2025-08-10T13:00:00Z", "Spain", 5}, {"2025-08-10T15:00:00Z", "France", 7}}
	if !reflect.DeepEqual(rows, want) || total != 22 {
		t.Fatalf("grouped: got %v total %d", rows, total)
	}
	// Months from daily rows (the Roamify example: 952 MB + 61 MB + 74 MB).
	const mb = 1 << 20
	day := func(s string) time.Time { return ts(s + "T00:00:00Z") }
	d := []Delta{{day("2025-08-10"), 952 * mb, "France"}, {day("2025-08-11"), 61 * mb, "France"}, {day("2025-08-11"), 74 * mb, "Spain"}}
	b, total = BucketDeltas(Month, ts("2025-07-01T00:00:00Z"), ts("2025-09-01T00:00:00Z"), d, false)
	if len(b) != 2 || b[0].DataBytes != 0 || b[1].DataBytes != 1087*mb || total != 1087*mb {
		t.Fatalf("months: %+v total %d", b, total)
	}
}

func TestGranularity(t *testing.T) {
	at := ts("2024-02-29T13:45:10Z")
	tests := []struct {
		g                 Granularity
		floor, next, ceil string
	}{
		{Hour, "2024-02-29T13:00:00Z", "2024-02-29T14:00:00Z", "2024-02-29T14:00:00Z"},
		{Day, "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z"},
		{Month, "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(string(tt.g), func(t *testing.T) {
			f := tt.g.Floor(at)
			if formatTime(f) != tt.floor || formatTime(tt.g.Next(f)) != tt.next || formatTime(tt.g.Ceil(at)) != tt.ceil {
				t.Errorf("floor %s next %s ceil %s", f, tt.g.Next(f), tt.g.Ceil(at))
			}
			if !tt.g.Ceil(f).Equal(f) {
				t.Errorf("ceil of a boundary moved it")
			}
		})
	}
	if g, ok := ParseGranularity(""); !ok || g != Day {
		t.Errorf("default granularity %q", g)
	}
	if _, ok := ParseGranularity("week"); ok {
		t.Errorf("week accepted")
	}
}

func TestCursor(t *testing.T) {
	c := Cursor{At: 1754817120000000000, ID: "abc123"}
	got, err := DecodeCursor(c.Encode())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "%%", "bm90LWEtY3Vyc29y", "djE6MTIz", "djE6eDph", "djE6MTIzOg"} {
		if _, err := DecodeCursor(bad); !errors.Is(err, ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v", bad, err)
		}
	}
}

func TestParams(t *testing.T) {
	usage := []struct {
		q    string
		code string
	}{
		{"", ""},
		{"granularity=hour&from=2025-08-10&to=2025-08-11T00:00:00Z", ""},
		{"from=2025-08-10T12:00:00%2B02:00", ""},
		{"group_by=location", ""},
		{"granularity=minute", "bad_granularity"},
		{"group_by=day", "bad_group_by"},
		{"from=2025-08-10T12:00", "bad_from"},
		{"to=10/08/2025", "bad_to"},
		{"from=2025-08-11&to=2025-08-11", "bad_range"},
		{"from=2025-08-12&to=2025-08-11", "bad_range"},
	}
	for _, tt := range usage {
		t.Run("usage "+tt.q, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.q)
			_, err := parseUsageParams(v.Get)
			checkCode(t, err, tt.code)
		})
	}
	evs := []struct {
		q    string
		code string
		want EventsQuery
	}{
		{"", "", EventsQuery{Kinds: TimelineKinds, Limit: 50}},
		{"kind=status,imei,status&limit=500", "", EventsQuery{Kinds: []string{"imei", "status"}, Limit: 500}},
		{"kind=usage", "bad_kind", EventsQuery{}},
		{"kind=status,", "bad_kind", EventsQuery{}},
		{"limit=0", "bad_limit", EventsQuery{}},
		{"limit=501", "bad_limit", EventsQuery{}},
		{"limit=-1", "bad_limit", EventsQuery{}},
		{"cursor=xyz", "bad_cursor", EventsQuery{}},
		{"from=2025-01-02&to=2025-01-01", "bad_range", EventsQuery{}},
	}
	for _, tt := range evs {
		t.Run("events "+tt.q, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.q)
			got, err := parseEventsParams(v.Get)
			checkCode(t, err, tt.code)
			if tt.code == "" && (!reflect.DeepEqual(got.Kinds, tt.want.Kinds) || got.Limit != tt.want.Limit) {
				t.Errorf("got %+v", got)
			}
		})
	}
	for s, ok := range map[string]bool{"8910300000051234567": true, "": false, "89103000000512345670000": false, "8910x": false} {
		if ValidICCID(s) != ok {
			t.Errorf("ValidICCID(%q) != %v", s, ok)
		}
	}
}

func checkCode(t *testing.T, err error, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	var he *httpx.Error
	if !errors.As(err, &he) || he.Code != code || he.Status != http.StatusBadRequest {
		t.Fatalf("got %v, want 400 %s", err, code)
	}
}

// TestRowOf checks what one event contributes: snapshot counters, daily
// rows and the timeline fields.
func TestRowOf(t *testing.T) {
	at := timestamppb.New(ts("2025-08-11T05:12:00Z"))
	tests := []struct {
		name       string
		ev         *simtrailv1.Event
		snap       *int64
		detail     map[string]any
		imei, stat any
	}{
		{
			name: "roamify usage: used from allowed-remaining, daily rows, not in timeline",
			ev: &simtrailv1.Event{Id: "a", Iccid: "1", Kind: simtrailv1.Kind_KIND_USAGE, OccurredAt: at,
				Sim: &simtrailv1.SimSnapshot{Status: "active", Usage: &simtrailv1.UsageSnapshot{
					AllowedBytes: proto.Int64(300), RemainingBytes: proto.Int64(100),
					Daily: []*simtrailv1.DailyUsage{{Date: "2025-08-11", Location: "France", DataBytes: 200}}}}},
			snap: ptr[int64](200), stat: "active",
		},
		{
			name: "unlimited without counters gives no snapshot",
			ev: &simtrailv1.Event{Id: "a", Iccid: "1", Kind: simtrailv1.Kind_KIND_USAGE, OccurredAt: at,
				Sim: &simtrailv1.SimSnapshot{Usage: &simtrailv1.UsageSnapshot{Unlimited: true, RemainingBytes: proto.Int64(5)}}},
		},
		{
			name: "imei change",
			ev: &simtrailv1.Event{Id: "b", Iccid: "1", Kind: simtrailv1.Kind_KIND_IMEI, OccurredAt: at,
				Body: &simtrailv1.Event_Imei{Imei: &simtrailv1.ImeiChanged{Imei: "352099001761481", Rule: &simtrailv1.Rule{Id: "r", Name: "n"}}}},
			imei:   "352099001761481",
			detail: map[string]any{"imei": "352099001761481", "rule": map[string]any{"id": "r", "name": "n", "description": ""}},
		},
		{
			name: "truphone threshold",
			ev: &simtrailv1.Event{Id: "c", Iccid: "1", Kind: simtrailv1.Kind_KIND_THRESHOLD, OccurredAt: at,
				Sim:  &simtrailv1.SimSnapshot{Usage: &simtrailv1.UsageSnapshot{RemainingBytes: proto.Int64(1073741824)}},
				Body: &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{Percent: proto.Int32(80), Direction: "used", SubscriptionId: "s"}}},
			detail: map[string]any{"percent": 80.0, "rule": nil, "direction": "used", "used_bytes": nil, "remaining_bytes": 1073741824.0,
				"allowed_bytes": nil, "subscription_id": "s", "expires_at": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rowOf(tt.ev)
			if !reflect.DeepEqual(r.snapUsed, tt.snap) {
				t.Errorf("snapshot %v, want %v", r.snapUsed, tt.snap)
			}
			if r.imei != tt.imei || r.status != tt.stat {
				t.Errorf("imei %v status %v", r.imei, r.status)
			}
			var got map[string]any
			if r.detail != nil {
				if err := json.Unmarshal([]byte(r.detail.(string)), &got); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(got, tt.detail) {
				t.Errorf("detail %v, want %v", got, tt.detail)
			}
		})
	}
}

// TestSumBucketsScratchReuse: sums computed in a recycled scratch (as the
// usage handler does) equal fresh ones, whatever the previous answer left
// in it: longer or shorter ranges, other granularities, grouped or not.
func TestSumBucketsScratchReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := ts("2025-08-01T00:00:00Z")
	for i := range 300 {
		g := []Granularity{Hour, Day, Month}[rng.IntN(3)]
		from := g.Floor(base.Add(time.Duration(rng.IntN(40*24)) * time.Hour))
		to := g.Ceil(from.Add(time.Duration(1+rng.IntN(60*24)) * time.Hour))
		var deltas []Delta
		for range rng.IntN(50) {
			deltas = append(deltas, Delta{At: from.Add(time.Duration(rng.IntN(80*24)-10*24) * time.Hour),
				Bytes: int64(rng.IntN(1000)), Location: []string{"France", "Spain", UnknownLocation}[rng.IntN(3)]})
		}
		grouped := rng.IntN(4) == 0
		want, wantTotal := sumBuckets(nil, g, from, to, deltas, grouped)
		sc := scratchPool.Get().(*usageScratch) // mostly the one released last round
		got, total := sumBuckets(sc, g, from, to, deltas, grouped)
		if !reflect.DeepEqual(got, want) || total != wantTotal {
			t.Fatalf("case %d (%s %s..%s grouped=%v): scratch answer differs", i, g, from, to, grouped)
		}
		sc.release()
	}
}
