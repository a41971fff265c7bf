package providers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

var (
	droam    = simtrailv1.Provider_PROVIDER_DROAM
	roamify  = simtrailv1.Provider_PROVIDER_ROAMIFY
	truphone = simtrailv1.Provider_PROVIDER_TRUPHONE
)

func nested(depth int, open, close string) string {
	return strings.Repeat(open, depth) + strings.Repeat(close, depth)
}

func TestNotJSON(t *testing.T) {
	bodies := []string{
		"", "   ", "not json", "{", `{"type":"echo"`, "\xff\xfe", "{'a':1}", `{"a":1}{"b":2}`,
		"\xef\xbb\xbf{}", // a BOM is not JSON (RFC 8259 §8.1 lets us refuse it)
		nested(10001, "[", "]"),
	}
	for p, parse := range parsers {
		for _, b := range bodies {
			got, err := parse([]byte(b), receivedAt)
			if !errors.Is(err, ErrNotJSON) || got.Event != nil || got.Echo {
				t.Errorf("%v %.20q: got %+v, %v; want ErrNotJSON", p, b, got, err)
			}
		}
	}
}

func TestNonObjectJSON(t *testing.T) {
	for p := range parsers {
		for body, kind := range map[string]string{
			`[]`: "an array", `[{"type":"echo","echo_data":"a"}]`: "an array", `42`: "a number",
			`"text"`: "a string", `null`: "null", ` true `: "a boolean",
			nested(9000, "[", "]"): "an array",
		} {
			ev := mustParse(t, p, []byte(body)).Event
			if ev.GetKind() != simtrailv1.Kind_KIND_OTHER || events.Key(ev) != events.NoKey {
				t.Errorf("%v %.20q: kind %v key %s", p, body, ev.GetKind(), events.Key(ev))
			}
			if want := "body is " + kind + ", not an object"; ev.GetOther().GetReason() != want {
				t.Errorf("%v %.20q: reason %q, want %q", p, body, ev.GetOther().GetReason(), want)
			}
		}
	}
}

// hostileCase is one body and what must come of it.
type hostileCase struct {
	name     string
	body     string
	kind     simtrailv1.Kind
	key      string // subject key; "" means events.NoKey
	reason   string // substring of the other reason
	echo     bool
	check    func(t *testing.T, ev *simtrailv1.Event)
	receipts bool // occurred-at must be the receipt time
}

func runHostile(t *testing.T, p simtrailv1.Provider, cases []hostileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustParse(t, p, []byte(c.body))
			if got.Echo != c.echo {
				t.Fatalf("echo = %v, want %v (event %v)", got.Echo, c.echo, got.Event)
			}
			if c.echo {
				return
			}
			ev := got.Event
			if ev.GetKind() != c.kind {
				t.Fatalf("kind %v, want %v (reason %q)", ev.GetKind(), c.kind, ev.GetOther().GetReason())
			}
			key := c.key
			if key == "" {
				key = events.NoKey
			}
			if events.Key(ev) != key {
				t.Errorf("key %q, want %q", events.Key(ev), key)
			}
			if c.reason != "" && !strings.Contains(ev.GetOther().GetReason(), c.reason) {
				t.Errorf("reason %q, want it to contain %q", ev.GetOther().GetReason(), c.reason)
			}
			if c.receipts && !ev.GetOccurredAtIsReceipt() {
				t.Errorf("occurred_at %v should be the receipt time", ev.GetOccurredAt().AsTime())
			}
			if c.check != nil {
				c.check(t, ev)
			}
		})
	}
}

const iccid = "8937204016150000018"

// droamSim wraps a sim_card body in a status.changed envelope.
func droamSim(simCard string) string {
	return `{"type":"rule.sim_card.status.changed","data":{"sim_card":` + simCard +
		`},"created_at":{"unix_timestamp":1717250560}}`
}

func droamDetails(details string) string {
	return droamSim(`{"iccid":"` + iccid + `","status":{"id":3,"title":"active"},"details":` + details + `}`)
}

func usageOf(ev *simtrailv1.Event) *simtrailv1.UsageSnapshot {
	if u := ev.GetSim().GetUsage(); u != nil {
		return u
	}
	return &simtrailv1.UsageSnapshot{}
}

func wantUsage(used, remaining, allowed *int64) func(t *testing.T, ev *simtrailv1.Event) {
	return func(t *testing.T, ev *simtrailv1.Event) {
		t.Helper()
		u := usageOf(ev)
		eqQty(t, "used", u.UsedBytes, used)
		eqQty(t, "remaining", u.RemainingBytes, remaining)
		eqQty(t, "allowed", u.AllowedBytes, allowed)
	}
}

func wantOccurred(at time.Time) func(t *testing.T, ev *simtrailv1.Event) {
	return func(t *testing.T, ev *simtrailv1.Event) {
		t.Helper()
		if ev.GetOccurredAtIsReceipt() {
			t.Error("occurred_at_is_receipt set")
		}
		eqTime(t, "occurred", ev.GetOccurredAt().AsTime(), at)
	}
}

func TestDroamHostile(t *testing.T) {
	status := simtrailv1.Kind_KIND_STATUS
	other := simtrailv1.Kind_KIND_OTHER
	noUsage := wantUsage(nil, nil, nil)
	runHostile(t, droam, []hostileCase{
		// Shape.
		{name: "empty object", body: `{}`, kind: other, reason: "missing type", receipts: true},
		{name: "type not a string", body: `{"type":5,"data":{}}`, kind: other, reason: "missing type"},
		{name: "data array", body: `{"type":"rule.sim_card.status.changed","data":[]}`, kind: other, reason: "data is an array"},
		{name: "data string", body: `{"type":"sim_card.first_usage","data":"x"}`, kind: other, reason: "data is a string"},
		{name: "data missing", body: `{"type":"sim_card.first_usage"}`, kind: other, reason: "missing sim_card"},
		{name: "sim_card not object", body: `{"type":"sim_card.first_usage","data":{"sim_card":[1]}}`, kind: other, reason: "missing sim_card"},
		{name: "unknown type keyed by iccid", body: `{"type":"sim_card.swapped","data":{"sim_card":{"iccid":"` + iccid + `"}}}`,
			kind: other, key: iccid, reason: "unknown type"},
		{name: "company event", body: `{"type":"company.updated","data":{"company":{"uuid":"x"}}}`, kind: other, reason: "not a SIM event"},
		{name: "caption spelling", body: `{"type":"rule.sim_card.remaining_usage_triggered","data":{"sim_card":{"iccid":"` + iccid + `"}}}`,
			kind: simtrailv1.Kind_KIND_THRESHOLD, key: iccid, check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "direction", ev.GetThreshold().GetDirection(), "remaining")
			}},
		{name: "huge type clipped", body: `{"type":"` + strings.Repeat("x", 5000) + `"}`, kind: other,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				if len(ev.GetProviderType()) != maxTypeLen {
					t.Errorf("provider type %d bytes", len(ev.GetProviderType()))
				}
			}},
		{name: "deeply nested data", body: `{"type":"x","data":` + nested(9000, `[`, `]`) + `}`, kind: other},
		{name: "deeply nested sim_card", body: `{"type":"sim_card.first_usage","data":{"sim_card":` + strings.Repeat(`{"a":`, 9000) + `1` + strings.Repeat(`}`, 9000) + `}}`, kind: other},

		// ICCID.
		{name: "iccid wildcard", body: droamSim(`{"iccid":"89.*>","status":{"title":"active"}}`), kind: other, reason: `invalid iccid: "89.*>"`,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				if ev.GetIccid() != "" || ev.GetSim().GetIccid() != "" {
					t.Error("invalid iccid copied")
				}
			}},
		{name: "iccid 23 digits", body: droamSim(`{"iccid":"89372040161500000181234","status":{"title":"active"}}`), kind: other, reason: "invalid iccid"},
		{name: "iccid 9 digits", body: droamSim(`{"iccid":"893720401","status":{"title":"active"}}`), kind: other, reason: "invalid iccid"},
		{name: "iccid with hex F", body: droamSim(`{"iccid":"893720401615000001F","status":{"title":"active"}}`), kind: other, reason: "invalid iccid"},
		{name: "iccid subject injection", body: droamSim(`{"iccid":"8937204016150000018.>","status":{"title":"active"}}`), kind: other, reason: "invalid iccid"},
		{name: "iccid missing", body: droamSim(`{"status":{"title":"active"}}`), kind: other, reason: "missing iccid"},
		{name: "iccid null", body: droamSim(`{"iccid":null,"status":{"title":"active"}}`), kind: other, reason: "missing iccid"},
		{name: "iccid padded", body: droamSim(`{"iccid":"  ` + iccid + ` ","status":{"title":"active"}}`), kind: status, key: iccid},
		{name: "iccid as number", body: droamSim(`{"iccid":` + iccid + `,"status":{"title":"active"}}`), kind: status, key: iccid},
		{name: "iccid huge", body: droamSim(`{"iccid":"` + strings.Repeat("9", 100000) + `","status":{"title":"active"}}`), kind: other, reason: "invalid iccid",
			check: func(t *testing.T, ev *simtrailv1.Event) {
				if len(ev.GetOther().GetReason()) > 100 {
					t.Errorf("reason is %d bytes", len(ev.GetOther().GetReason()))
				}
			}},

		// Status.
		{name: "status title spaced", body: droamSim(`{"iccid":"` + iccid + `","status":{"id":"5","title":" Not Available "}}`), kind: status, key: iccid,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "status", ev.GetStatus().GetStatus(), "not_available")
				eq(t, "raw", ev.GetStatus().GetStatusRaw(), " Not Available ")
				eq(t, "id", ev.GetStatus().GetStatusId(), "5")
			}},
		{name: "status missing", body: droamSim(`{"iccid":"` + iccid + `"}`), kind: other, key: iccid, reason: "missing status"},
		{name: "status not object", body: droamSim(`{"iccid":"` + iccid + `","status":"active"}`), kind: other, key: iccid, reason: "missing status"},
		{name: "status id object", body: droamSim(`{"iccid":"` + iccid + `","status":{"id":{},"title":"active"}}`), kind: status, key: iccid,
			check: func(t *testing.T, ev *simtrailv1.Event) { eq(t, "id", ev.GetStatus().GetStatusId(), "") }},
		{name: "invalid utf-8 title", body: droamSim(`{"iccid":"` + iccid + "\",\"status\":{\"title\":\"act\xffive\"}}"), kind: status, key: iccid,
			check: func(t *testing.T, ev *simtrailv1.Event) { eq(t, "raw", ev.GetStatus().GetStatusRaw(), "act\uFFFDive") }},

		// IMEI.
		{name: "imei dashes", body: `{"type":"rule.sim_card.imei.changed","data":{"sim_card":{"iccid":"` + iccid + `","imei":"86-000000-111111-2"}}}`,
			kind: simtrailv1.Kind_KIND_IMEI, key: iccid, check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "imei", ev.GetImei().GetImei(), "860000001111112")
				eq(t, "raw", ev.GetImei().GetImeiRaw(), "86-000000-111111-2")
				eq(t, "sim imei", ev.GetSim().GetImei(), "860000001111112")
			}},
		{name: "imei missing", body: `{"type":"rule.sim_card.imei.changed","data":{"sim_card":{"iccid":"` + iccid + `"}}}`,
			kind: other, key: iccid, reason: "imei"},

		// Details and numbers.
		{name: "details []", body: droamDetails(`[]`), kind: status, key: iccid, check: noUsage},
		{name: "details {}", body: droamDetails(`{}`), kind: status, key: iccid, check: noUsage},
		{name: "details null", body: droamDetails(`null`), kind: status, key: iccid, check: noUsage},
		{name: "details string", body: droamDetails(`"512"`), kind: status, key: iccid, check: noUsage},
		{name: "details list", body: droamDetails(`[1,2]`), kind: status, key: iccid, check: noUsage},
		{name: "details strings", body: droamDetails(`{"current_usage_kb":"512","remaining_usage_kb":" 1.5 "}`), kind: status, key: iccid,
			check: wantUsage(i64(512*1024), i64(1536), i64(512*1024+1536))},
		{name: "details floats", body: droamDetails(`{"current_usage_kb":12.5,"remaining_usage_kb":"12.50"}`), kind: status, key: iccid,
			check: wantUsage(i64(12800), i64(12800), i64(25600))},
		{name: "details negative", body: droamDetails(`{"current_usage_kb":-1,"remaining_usage_kb":"-0.5"}`), kind: status, key: iccid, check: noUsage},
		{name: "details huge", body: droamDetails(`{"current_usage_kb":1e300,"remaining_usage_kb":"99999999999999999999999"}`), kind: status, key: iccid, check: noUsage},
		{name: "details beyond 2^53", body: droamDetails(`{"current_usage_kb":8796093022209}`), kind: status, key: iccid, check: noUsage},
		{name: "details at 2^53", body: droamDetails(`{"current_usage_kb":8796093022208}`), kind: status, key: iccid,
			check: wantUsage(i64(1<<53), nil, nil)},
		{name: "details NaN-ish", body: droamDetails(`{"current_usage_kb":"NaN","remaining_usage_kb":"Infinity","x":"0x10"}`), kind: status, key: iccid, check: noUsage},
		{name: "details odd strings", body: droamDetails(`{"current_usage_kb":"1_000","remaining_usage_kb":""}`), kind: status, key: iccid, check: noUsage},
		{name: "details objects", body: droamDetails(`{"current_usage_kb":{},"remaining_usage_kb":[1]}`), kind: status, key: iccid, check: noUsage},
		{name: "sum beyond 2^53", body: droamDetails(`{"current_usage_kb":8796093022208,"remaining_usage_kb":1}`), kind: status, key: iccid,
			check: wantUsage(i64(1<<53), i64(1024), nil)},

		// Times.
		{name: "created_at string", body: `{"type":"x","created_at":{"unix_timestamp":"1719792000"}}`, kind: other,
			check: wantOccurred(time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))},
		{name: "created_at fraction", body: `{"type":"x","created_at":{"unix_timestamp":"1719792000.50"}}`, kind: other,
			check: wantOccurred(time.Date(2024, 7, 1, 0, 0, 0, 5e8, time.UTC))},
		{name: "created_at null", body: `{"type":"x","created_at":{"unix_timestamp":null}}`, kind: other, receipts: true},
		{name: "created_at text", body: `{"type":"x","created_at":{"unix_timestamp":"yesterday"}}`, kind: other, receipts: true},
		{name: "created_at negative", body: `{"type":"x","created_at":{"unix_timestamp":-5}}`, kind: other, receipts: true},
		{name: "created_at huge", body: `{"type":"x","created_at":{"unix_timestamp":1e300}}`, kind: other, receipts: true},
		{name: "created_at year 10000", body: `{"type":"x","created_at":{"unix_timestamp":253402300800}}`, kind: other, receipts: true},
		{name: "created_at not object", body: `{"type":"x","created_at":"2024-07-01"}`, kind: other, receipts: true},

		// Pool.
		{name: "pool uuid unsafe", body: `{"type":"rule.pool.usage.triggered","data":{"pool":{"uuid":"a.b.>","current_usage_kb":"-3"}}}`,
			kind: simtrailv1.Kind_KIND_POOL, check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "pool id", ev.GetPoolId(), "")
				eq(t, "body pool id", ev.GetPool().GetPoolId(), "a.b.>")
				if ev.GetPool().UsedBytes != nil {
					t.Error("negative usage kept")
				}
			}},
		{name: "pool missing", body: `{"type":"rule.pool.usage.triggered","data":{}}`, kind: other, reason: "missing pool"},

		// Echo.
		{name: "echo flat", body: `{"type":"echo","echo_data":"a:B:9"}`, echo: true},
		{name: "echo 50 chars", body: `{"type":"echo","echo_data":"` + strings.Repeat("a", 50) + `"}`, echo: true},
		{name: "echo 51 chars", body: `{"type":"echo","echo_data":"` + strings.Repeat("a", 51) + `"}`, kind: other, reason: "invalid echo"},
		{name: "echo html", body: `{"type":"echo","echo_data":"<script>"}`, kind: other, reason: "invalid echo"},
		{name: "echo empty", body: `{"type":"echo","echo_data":""}`, kind: other, reason: "invalid echo"},
		{name: "echo number", body: `{"type":"echo","echo_data":123}`, kind: other, reason: "invalid echo"},
		{name: "echo missing", body: `{"type":"echo"}`, kind: other, reason: "invalid echo"},
		{name: "echo data not object", body: `{"type":"echo","data":"abc"}`, kind: other, reason: "invalid echo"},
		{name: "echo enveloped bad", body: `{"type":"echo","data":{"echo_data":"a b"}}`, kind: other, reason: "invalid echo"},
		{name: "echo enveloped", body: `{"type":"echo","data":{"echo_data":"abc:1"}}`, echo: true},
	})
}

// roamifyUsage wraps usage_data, usage_list and units into an esim/usage body.
func roamifyUsageBody(extra string) string {
	return `{"event_category":"esim","event_type":"usage","data":{"timestamp":1754831520,"iccid":"` +
		roamifyICCID + `","package_id":"p","start":1754817120` + extra + `}}`
}

func TestRoamifyHostile(t *testing.T) {
	usage := simtrailv1.Kind_KIND_USAGE
	other := simtrailv1.Kind_KIND_OTHER
	rows := func(want ...daily) func(t *testing.T, ev *simtrailv1.Event) {
		return func(t *testing.T, ev *simtrailv1.Event) {
			t.Helper()
			got := usageOf(ev).GetDaily()
			if len(got) != len(want) {
				t.Fatalf("rows %v, want %v", got, want)
			}
			for i, r := range got {
				if got := (daily{r.GetDate(), r.GetLocation(), r.GetDataBytes()}); got != want[i] {
					t.Errorf("row %d = %v, want %v", i, got, want[i])
				}
			}
		}
	}
	runHostile(t, roamify, []hostileCase{
		{name: "empty object", body: `{}`, kind: other, reason: "missing event_category", receipts: true},
		{name: "data array", body: `{"event_category":"esim","event_type":"usage","data":[]}`, kind: other, reason: "data is an array"},
		{name: "data missing", body: `{"event_category":"esim","event_type":"status"}`, kind: other, reason: "missing data"},
		{name: "legacy flat usage", body: `{"event_category":"esim","event_type":"esim_usage","timestamp":1754831520,"iccid":"` + roamifyICCID +
			`","usage_data":{"allowed_data":1,"remaining_data":0.5}}`, kind: usage, key: roamifyICCID,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "type", ev.GetProviderType(), "esim/usage")
				wantUsage(i64(mb/2), i64(mb/2), i64(mb))(t, ev)
				wantOccurred(time.Date(2025, 8, 10, 13, 12, 0, 0, time.UTC))(t, ev)
			}},
		{name: "status alias", body: `{"event_category":"esim","event_type":"esim_status","data":{"iccid":"` + roamifyICCID + `","status":"Expired"}}`,
			kind: simtrailv1.Kind_KIND_STATUS, key: roamifyICCID, receipts: true,
			check: func(t *testing.T, ev *simtrailv1.Event) { eq(t, "status", ev.GetStatus().GetStatus(), "expired") }},
		{name: "status missing", body: `{"event_category":"esim","event_type":"status","data":{"iccid":"` + roamifyICCID + `"}}`,
			kind: other, key: roamifyICCID, reason: "missing status"},
		{name: "unknown esim type", body: `{"event_category":"esim","event_type":"deleted","data":{"iccid":"` + roamifyICCID + `"}}`,
			kind: other, key: roamifyICCID, reason: "unknown type"},
		{name: "partner", body: `{"event_category":"partner","event_type":"top_up","data":{"timestamp":"1754849100"}}`, kind: other, reason: "not a SIM event",
			check: wantOccurred(time.Date(2025, 8, 10, 18, 5, 0, 0, time.UTC))},
		{name: "iccid wildcard", body: `{"event_category":"esim","event_type":"status","data":{"iccid":"89.*>","status":"NEW"}}`, kind: other, reason: `invalid iccid: "89.*>"`},
		{name: "iccid missing", body: `{"event_category":"esim","event_type":"status","data":{"status":"NEW"}}`, kind: other, reason: "missing iccid"},
		{name: "refund without iccid", body: `{"event_id":"e1","event_category":"refund","event_type":"refunded","data":{"iccid":"","refund_id":"r1","status":"REFUNDED"}}`,
			kind: simtrailv1.Kind_KIND_LIFECYCLE, check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "name", ev.GetLifecycle().GetName(), "refund_refunded")
				eq(t, "event id", ev.GetProviderEventId(), "e1")
				if _, ok := ev.GetLifecycle().GetAttributes()["rejection_reason"]; ok {
					t.Error("empty attribute kept")
				}
			}},
		{name: "refund bad iccid", body: `{"event_category":"refund","event_type":"refunded","data":{"iccid":"x"}}`, kind: other, reason: "invalid iccid"},
		{name: "unlimited placeholders", body: roamifyUsageBody(`,"usage_data":{"isUnlimited":true,"allowed_data":0,"remaining_data":-1}`), kind: usage, key: roamifyICCID,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				if !usageOf(ev).GetUnlimited() {
					t.Error("unlimited not set")
				}
				wantUsage(nil, nil, nil)(t, ev)
			}},
		{name: "unlimited with numbers", body: roamifyUsageBody(`,"usage_data":{"isUnlimited":"true","allowed_data":10240,"remaining_data":10000}`), kind: usage, key: roamifyICCID,
			check: wantUsage(i64(240*mb), i64(10000*mb), i64(10240*mb))},
		{name: "remaining above allowed", body: roamifyUsageBody(`,"usage_data":{"allowed_data":100,"remaining_data":150}`), kind: usage, key: roamifyICCID,
			check: wantUsage(i64(0), i64(150*mb), i64(100*mb))},
		{name: "fractional MB", body: roamifyUsageBody(`,"usage_data":{"allowed_data":0.0000001,"remaining_data":"0"}`), kind: usage, key: roamifyICCID,
			check: wantUsage(i64(0), i64(0), i64(0))},
		{name: "hostile numbers", body: roamifyUsageBody(`,"usage_data":{"allowed_data":1e300,"remaining_data":"NaN","allowed_sms":-1,"remaining_sms":"9e99","allowed_voice":{},"remaining_voice":"x"}`),
			kind: usage, key: roamifyICCID, check: func(t *testing.T, ev *simtrailv1.Event) {
				u := usageOf(ev)
				if u.AllowedBytes != nil || u.RemainingBytes != nil || u.UsedBytes != nil || u.AllowedSms != nil ||
					u.RemainingSms != nil || u.AllowedVoiceSeconds != nil || u.RemainingVoiceSeconds != nil {
					t.Errorf("absurd numbers kept: %v", u)
				}
			}},
		{name: "voice and sms", body: roamifyUsageBody(`,"usage_data":{"allowed_sms":"100","remaining_sms":50,"allowed_voice":2.5,"remaining_voice":"1"}`), kind: usage, key: roamifyICCID,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				u := usageOf(ev)
				eqQty(t, "sms", u.AllowedSms, i64(100))
				eqQty(t, "sms left", u.RemainingSms, i64(50))
				eqQty(t, "voice", u.AllowedVoiceSeconds, i64(150))
				eqQty(t, "voice left", u.RemainingVoiceSeconds, i64(60))
			}},
		{name: "GB units", body: roamifyUsageBody(`,"data_units":"GB","usage_data":{"allowed_data":3,"remaining_data":1}`), kind: usage, key: roamifyICCID,
			check: wantUsage(i64(2048*mb), i64(1024*mb), i64(3072*mb))},
		{name: "unknown units", body: roamifyUsageBody(`,"data_units":"parsecs","usage_data":{"allowed_data":3,"remaining_data":1},"usage_list":[{"date":"2025-08-10","data_used":1}]`),
			kind: usage, key: roamifyICCID, check: func(t *testing.T, ev *simtrailv1.Event) {
				wantUsage(nil, nil, nil)(t, ev)
				rows()(t, ev)
			}},
		{name: "bad rows skipped", body: roamifyUsageBody(`,"usage_list":[{"date":"2025-13-01","data_used":1},{"date":"2025-8-1","data_used":1},` +
			`{"date":"yesterday","data_used":1},{"date":"2025-08-10","data_used":-1},{"date":"2025-08-10"},{"date":5,"data_used":1},"row",null,` +
			`{"date":"2025-02-29","data_used":1},{"date":" 2025-08-11 ","data_used":"1.5","location":"Spain"},{"date":"2025-08-10","data_used":2,"location":["x"]}]`),
			kind: usage, key: roamifyICCID, check: rows(daily{"2025-08-11", "Spain", 3 * mb / 2}, daily{"2025-08-10", "", 2 * mb})},
		{name: "usage_list object", body: roamifyUsageBody(`,"usage_list":{"date":"2025-08-10"}`), kind: usage, key: roamifyICCID, check: rows()},
		{name: "period without start", body: roamifyUsageBody(`,"start":null`), kind: usage, key: roamifyICCID,
			check: func(t *testing.T, ev *simtrailv1.Event) { eq(t, "period", ev.GetSim().GetPeriod().GetId(), "p") }},
		{name: "timestamp string", body: `{"event_category":"esim","event_type":"status","data":{"timestamp":"1754817120","iccid":"` + roamifyICCID + `","status":"ACTIVATED"}}`,
			kind: simtrailv1.Kind_KIND_STATUS, key: roamifyICCID, check: wantOccurred(time.Date(2025, 8, 10, 9, 12, 0, 0, time.UTC))},
		{name: "invalid utf-8", body: "{\"event_category\":\"es\xffim\",\"event_type\":\"\xc3\",\"data\":{\"iccid\":\"" + roamifyICCID + "\"}}",
			kind: other, key: roamifyICCID, check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "type", ev.GetProviderType(), "es\uFFFDim/\uFFFD")
			}},
	})
}

func TestTruphoneHostile(t *testing.T) {
	other := simtrailv1.Kind_KIND_OTHER
	lifecycle := simtrailv1.Kind_KIND_LIFECYCLE
	const tIccid = "8944474600001234567"
	runHostile(t, truphone, []hostileCase{
		{name: "empty object", body: `{}`, kind: other, reason: "missing type", receipts: true},
		{name: "type number", body: `{"type":1,"iccid":"` + tIccid + `"}`, kind: other, key: tIccid, reason: "missing type"},
		{name: "unknown type", body: `{"type":"SIM_SWAP","iccid":"` + tIccid + `"}`, kind: other, key: tIccid, reason: "unknown type"},
		{name: "missing iccid", body: `{"type":"USAGE_THRESHOLD","threshold":80}`, kind: other, reason: "missing iccid"},
		{name: "iccid wildcard", body: `{"type":"USAGE_THRESHOLD","iccid":"89.*>"}`, kind: other, reason: `invalid iccid: "89.*>"`},
		{name: "doc misspelling", body: `{"id":"1","type":"SUBSCRITPION_END","iccid":"` + tIccid + `"}`, kind: lifecycle, key: tIccid, receipts: true,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "type", ev.GetProviderType(), "SUBSCRIPTION_END")
				eq(t, "name", ev.GetLifecycle().GetName(), "subscription_ended")
			}},
		{name: "colon key", body: `{"type":"DOWNLOAD_PROGRESS","iccid":"` + tIccid + `","notification_point_description:":"BPP Download"}`, kind: lifecycle, key: tIccid,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "point", ev.GetLifecycle().GetAttributes()["notification_point_description"], "BPP Download")
			}},
		{name: "threshold string", body: `{"type":"USAGE_THRESHOLD","iccid":"` + tIccid + `","threshold":"80","current_balance":"1073741824"}`,
			kind: simtrailv1.Kind_KIND_THRESHOLD, key: tIccid, check: func(t *testing.T, ev *simtrailv1.Event) {
				if ev.GetThreshold().GetPercent() != 80 {
					t.Errorf("percent %v", ev.GetThreshold().Percent)
				}
				wantUsage(nil, i64(1024*mb), nil)(t, ev)
			}},
		{name: "threshold absurd", body: `{"type":"USAGE_THRESHOLD","iccid":"` + tIccid + `","threshold":1e300,"current_balance":-1,"expiration_date":"soon"}`,
			kind: simtrailv1.Kind_KIND_THRESHOLD, key: tIccid, check: func(t *testing.T, ev *simtrailv1.Event) {
				th := ev.GetThreshold()
				if th.Percent != nil || th.ExpiresAt != nil || ev.GetSim().GetUsage() != nil {
					t.Errorf("absurd values kept: %v", th)
				}
			}},
		{name: "threshold negative", body: `{"type":"USAGE_THRESHOLD","iccid":"` + tIccid + `","threshold":-80,"expiration_date":"0000-01-01T00:00:00Z"}`,
			kind: simtrailv1.Kind_KIND_THRESHOLD, key: tIccid, check: func(t *testing.T, ev *simtrailv1.Event) {
				if ev.GetThreshold().Percent != nil || ev.GetThreshold().ExpiresAt != nil {
					t.Errorf("kept %v", ev.GetThreshold())
				}
			}},
		{name: "offset expiry", body: `{"type":"SUBSCRIPTION_END","iccid":"` + tIccid + `","expiration_date":"2024-11-14T10:30:00+01:00"}`, kind: lifecycle, key: tIccid,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				eqTime(t, "expires", ev.GetLifecycle().GetExpiresAt().AsTime(), time.Date(2024, 11, 14, 9, 30, 0, 0, time.UTC))
			}},
		{name: "invalid utf-8", body: "{\"type\":\"DOWNLOAD_PROGRESS\",\"iccid\":\"" + tIccid + "\",\"notification_status\":\"\xff\xfe\"}", kind: lifecycle, key: tIccid,
			check: func(t *testing.T, ev *simtrailv1.Event) {
				eq(t, "status", ev.GetLifecycle().GetAttributes()["notification_status"], "\uFFFD\uFFFD")
			}},
	})
}
