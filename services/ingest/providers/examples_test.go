package providers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

const (
	kb = int64(1024)
	mb = int64(1024 * 1024)
)

// nonWebhook lists the example files that are not webhook bodies (auth
// vectors, responses, registration calls); auth_test.go uses the vectors.
var nonWebhook = map[string]bool{
	"droam/auth-fixture.json":                 true,
	"roamify/ack-response.json":               true,
	"roamify/signature-fixture.json":          true,
	"truphone/error-response.json":            true,
	"truphone/preferences.get-response.json":  true,
	"truphone/register-request.body.json":     true,
	"truphone/subscription.get-response.json": true,
	"truphone/token-response.ASSUMED.json":    true,
}

func i64(v int64) *int64 { return &v }

type daily struct {
	date, location string
	bytes          int64
}

// exampleWant is what an example file must parse to. Times, byte counts and
// kinds are written by hand from the tables in providers/*.md.
type exampleWant struct {
	echo         bool
	kind         simtrailv1.Kind
	subject      string
	iccid        string
	occurred     time.Time // zero: receipt time (occurred_at_is_receipt)
	providerType string
	used         *int64
	remaining    *int64
	allowed      *int64
	daily        []daily
	extra        func(t *testing.T, ev *simtrailv1.Event)
}

const (
	droamPrepaid = "8937204016150000018"
	droamSub     = "8937204016150000026"
	roamifyICCID = "8910300000051234567"
	truICCID     = "8944474600001234567"
)

var exampleWants = map[string]exampleWant{
	// droam (droam.md §10)
	"droam/echo.flat.json":      {echo: true},
	"droam/echo.enveloped.json": {echo: true},
	"droam/sim_card.assigned_to_end_user.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.droam." + droamPrepaid,
		iccid: droamPrepaid, occurred: time.Date(2024, 6, 1, 11, 15, 11, 0, time.UTC),
		providerType: "sim_card.assigned_to_end_user",
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "lifecycle name", ev.GetLifecycle().GetName(), "assigned_to_end_user")
			eq(t, "sim status", ev.GetSim().GetStatus(), "activation")
			eq(t, "end user", ev.GetSim().GetEndUserName(), "Jana Kowalska")
			eq(t, "company", ev.GetSim().GetCompanyId(), "0b6d8c52-4e1f-4a57-9c3e-5d2a7f18e904")
			eq(t, "period", ev.GetSim().GetPeriod().GetId(), "3f9a1b7e-5c2d-4e8f-a6b0-91d4c7e2f358")
			eq(t, "sim type", ev.GetSim().GetSimType(), "prepaid")
			if ev.GetSim().IsEsim == nil || ev.GetSim().GetIsEsim() {
				t.Error("is_esim should be set to false")
			}
		},
	},
	"droam/sim_card.first_usage.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.droam." + droamPrepaid,
		iccid: droamPrepaid, occurred: time.Date(2024, 6, 1, 14, 2, 37, 0, time.UTC),
		providerType: "sim_card.first_usage",
		used:         i64(84 * kb), remaining: i64(5242796 * kb), allowed: i64(5 * 1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "lifecycle name", ev.GetLifecycle().GetName(), "first_usage")
		},
	},
	"droam/rule.sim_card.status.changed.json": {
		kind: simtrailv1.Kind_KIND_STATUS, subject: "simtrail.events.status.droam." + droamPrepaid,
		iccid: droamPrepaid, occurred: time.Date(2024, 6, 1, 14, 2, 40, 0, time.UTC),
		providerType: "rule.sim_card.status.changed",
		used:         i64(84 * kb), remaining: i64(5242796 * kb), allowed: i64(5 * 1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			st := ev.GetStatus()
			eq(t, "status", st.GetStatus(), "active")
			eq(t, "status raw", st.GetStatusRaw(), "active")
			eq(t, "status id", st.GetStatusId(), "3")
			eq(t, "rule", st.GetRule().GetName(), "Notify on activation")
		},
	},
	"droam/rule.sim_card.remaining_usage.triggered.json": {
		kind: simtrailv1.Kind_KIND_THRESHOLD, subject: "simtrail.events.threshold.droam." + droamPrepaid,
		iccid: droamPrepaid, occurred: time.Date(2024, 6, 9, 18, 44, 5, 0, time.UTC),
		providerType: "rule.sim_card.remaining_usage.triggered",
		used:         i64(5038080 * kb), remaining: i64(200 * mb), allowed: i64(5 * 1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "direction", ev.GetThreshold().GetDirection(), "remaining")
			eq(t, "rule id", ev.GetThreshold().GetRule().GetId(), "5d41402a-bc4b-4a76-b971-9d911017c592")
			if ev.GetThreshold().Percent != nil {
				t.Error("droam sends no percent")
			}
		},
	},
	"droam/rule.sim_card.imei.changed.json": {
		kind: simtrailv1.Kind_KIND_IMEI, subject: "simtrail.events.imei.droam." + droamPrepaid,
		iccid: droamPrepaid, occurred: time.Date(2024, 6, 11, 7, 30, 12, 0, time.UTC),
		providerType: "rule.sim_card.imei.changed",
		used:         i64(5044480 * kb), remaining: i64(198400 * kb), allowed: i64(5 * 1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "imei", ev.GetImei().GetImei(), "352099001761481")
			eq(t, "imei raw", ev.GetImei().GetImeiRaw(), "352099001761481")
			eq(t, "rule", ev.GetImei().GetRule().GetName(), "IMEI lock")
		},
	},
	"droam/rule.sim_card.current_usage.triggered.json": {
		kind: simtrailv1.Kind_KIND_THRESHOLD, subject: "simtrail.events.threshold.droam." + droamSub,
		iccid: droamSub, occurred: time.Date(2024, 6, 20, 12, 0, 0, 0, time.UTC),
		providerType: "rule.sim_card.current_usage.triggered",
		used:         i64(1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "direction", ev.GetThreshold().GetDirection(), "used")
			eq(t, "plan type", ev.GetSim().GetPlan().GetType(), "dynamic_pool")
			eq(t, "sim type", ev.GetSim().GetSimType(), "subscription")
			if !ev.GetSim().GetIsEsim() {
				t.Error("is_esim should be true")
			}
		},
	},
	"droam/rule.pool.usage.triggered.json": {
		kind: simtrailv1.Kind_KIND_POOL, subject: "simtrail.events.pool.droam.34f1b2c8-6d9e-4a0b-8c7d-2e5f1a9b3c46",
		occurred:     time.Date(2024, 6, 24, 16, 20, 0, 0, time.UTC),
		providerType: "rule.pool.usage.triggered",
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			p := ev.GetPool()
			eq(t, "pool id", ev.GetPoolId(), "34f1b2c8-6d9e-4a0b-8c7d-2e5f1a9b3c46")
			eq(t, "pool name", p.GetName(), "Nordlys Fleet Pool")
			if p.UsedBytes == nil || p.GetUsedBytes() != 40*1024*mb {
				t.Errorf("pool used bytes %v, want 40 GiB", p.UsedBytes)
			}
			eq(t, "rule", p.GetRule().GetId(), "fcde2b2e-dba5-4bf4-8860-1e2fb5a6c7d8")
		},
	},
	"droam/rule.wallet.remaining_balance.triggered.ASSUMED.json": {
		kind: simtrailv1.Kind_KIND_OTHER, subject: "simtrail.events.other.droam._",
		occurred:     time.Date(2024, 6, 26, 8, 5, 44, 0, time.UTC),
		providerType: "rule.wallet.remaining_balance.triggered",
	},
	"droam/rule.sim_card.date.triggered.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.droam." + droamPrepaid,
		iccid: droamPrepaid, occurred: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC),
		providerType: "rule.sim_card.date.triggered",
		used:         i64(5092864 * kb), remaining: i64(150016 * kb), allowed: i64(5 * 1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "lifecycle name", ev.GetLifecycle().GetName(), "date_triggered")
			eq(t, "rule id", ev.GetLifecycle().GetRule().GetId(), "1719792000")
			eq(t, "status", ev.GetSim().GetStatus(), "active")
		},
	},

	// Roamify (roamify.md §9)
	"roamify/esim.status.01-installed.json": {
		kind: simtrailv1.Kind_KIND_STATUS, subject: "simtrail.events.status.roamify." + roamifyICCID,
		iccid: roamifyICCID, occurred: time.Date(2025, 8, 10, 9, 5, 30, 0, time.UTC),
		providerType: "esim/status",
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			eq(t, "status", ev.GetStatus().GetStatus(), "installed")
			eq(t, "status raw", ev.GetStatus().GetStatusRaw(), "INSTALLED")
			if ev.GetSim().GetPeriod() != nil {
				t.Errorf("null start/end should leave no period, got %v", ev.GetSim().GetPeriod())
			}
			eq(t, "esim id", ev.GetSim().GetProviderSimId(), "5f0c2a9e-7d41-4c8e-9b6a-2e1f3c4d5a60")
			eq(t, "reference", ev.GetSim().GetReferenceId(), "ord-2025-08-10-0042")
		},
	},
	"roamify/esim.status.02-activated.json": {
		kind: simtrailv1.Kind_KIND_STATUS, subject: "simtrail.events.status.roamify." + roamifyICCID,
		iccid: roamifyICCID, occurred: time.Date(2025, 8, 10, 9, 12, 0, 0, time.UTC),
		providerType: "esim/status", extra: roamifyActivated,
	},
	"roamify/esim.status.legacy-flat.json": {
		kind: simtrailv1.Kind_KIND_STATUS, subject: "simtrail.events.status.roamify." + roamifyICCID,
		iccid: roamifyICCID, occurred: time.Date(2025, 8, 10, 9, 12, 0, 0, time.UTC),
		providerType: "esim/status", extra: roamifyActivated,
	},
	"roamify/esim.usage.01.json": roamifyUsageWant(time.Date(2025, 8, 10, 13, 12, 0, 0, time.UTC), 118, 2954,
		daily{"2025-08-10", "France", 118 * mb}),
	"roamify/esim.usage.02.json": roamifyUsageWant(time.Date(2025, 8, 10, 17, 12, 0, 0, time.UTC), 491, 2581,
		daily{"2025-08-10", "France", 491 * mb}),
	"roamify/esim.usage.03-threshold25.json": roamifyUsageWant(time.Date(2025, 8, 10, 18, 40, 5, 0, time.UTC), 771, 2301,
		daily{"2025-08-10", "France", 771 * mb}),
	"roamify/esim.usage.04.json": roamifyUsageWant(time.Date(2025, 8, 10, 21, 12, 0, 0, time.UTC), 934, 2138,
		daily{"2025-08-10", "France", 934 * mb}),
	"roamify/esim.usage.05.json": roamifyUsageWant(time.Date(2025, 8, 11, 1, 12, 0, 0, time.UTC), 991, 2081,
		daily{"2025-08-10", "France", 952 * mb}, daily{"2025-08-11", "France", 39 * mb}),
	"roamify/esim.usage.06.json": roamifyUsageWant(time.Date(2025, 8, 11, 5, 12, 0, 0, time.UTC), 1087, 1985,
		daily{"2025-08-10", "France", 952 * mb}, daily{"2025-08-11", "France", 61 * mb},
		daily{"2025-08-11", "Spain", 74 * mb}),
	"roamify/partner.low_balance.json": {
		kind: simtrailv1.Kind_KIND_OTHER, subject: "simtrail.events.other.roamify._",
		occurred:     time.Date(2025, 8, 10, 18, 5, 0, 0, time.UTC),
		providerType: "partner/low_balance",
	},
	"roamify/affiliate.order.json": {
		kind: simtrailv1.Kind_KIND_OTHER, subject: "simtrail.events.other.roamify._",
		occurred:     time.Date(2025, 8, 10, 10, 41, 19, 0, time.UTC),
		providerType: "affiliate/order",
	},
	"roamify/refund.rejected.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.roamify." + roamifyICCID,
		iccid: roamifyICCID, occurred: time.Date(2025, 8, 12, 15, 0, 0, 0, time.UTC),
		providerType: "refund/rejected",
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			l := ev.GetLifecycle()
			eq(t, "name", l.GetName(), "refund_rejected")
			eq(t, "event id", ev.GetProviderEventId(), "rfd_rf_01J9Z7K2QK_rejected")
			eq(t, "refund_id", l.GetAttributes()["refund_id"], "rf_01J9Z7K2QK")
			eq(t, "status", l.GetAttributes()["status"], "REJECTED")
			eq(t, "reason", l.GetAttributes()["rejection_reason"], "eSIM already consumed more than 25% of its data allowance")
			eq(t, "esim id", ev.GetSim().GetProviderSimId(), "5f0c2a9e-7d41-4c8e-9b6a-2e1f3c4d5a60")
		},
	},

	// Truphone (truphone.md §8): no event time, so occurred-at is receipt.
	"truphone/USAGE_THRESHOLD.json": {
		kind: simtrailv1.Kind_KIND_THRESHOLD, subject: "simtrail.events.threshold.truphone." + truICCID,
		iccid: truICCID, providerType: "USAGE_THRESHOLD", remaining: i64(1024 * mb),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			th := ev.GetThreshold()
			if th.Percent == nil || th.GetPercent() != 80 {
				t.Errorf("percent %v, want 80", th.Percent)
			}
			eq(t, "subscription", th.GetSubscriptionId(), "U1VCLTAwMDQ1NjcxMjM=")
			eqTime(t, "expires", th.GetExpiresAt().AsTime(), time.Date(2024, 11, 14, 9, 30, 0, 0, time.UTC))
			eq(t, "event id", ev.GetProviderEventId(), "a91f0c37-5b2e-4d18-9c64-1e7f3b8a2d05")
			eq(t, "period", ev.GetSim().GetPeriod().GetId(), "U1VCLTAwMDQ1NjcxMjM=")
		},
	},
	"truphone/USAGE_THRESHOLD.legacy.json": {
		kind: simtrailv1.Kind_KIND_THRESHOLD, subject: "simtrail.events.threshold.truphone." + truICCID,
		iccid: truICCID, providerType: "USAGE_THRESHOLD",
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			if ev.GetThreshold().GetPercent() != 80 || ev.GetThreshold().ExpiresAt != nil {
				t.Errorf("threshold %v", ev.GetThreshold())
			}
		},
	},
	"truphone/SUBSCRIPTION_END.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.truphone." + truICCID,
		iccid: truICCID, providerType: "SUBSCRIPTION_END", remaining: i64(0),
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			l := ev.GetLifecycle()
			eq(t, "name", l.GetName(), "subscription_ended")
			eq(t, "subscription", l.GetSubscriptionId(), "U1VCLTAwMDQ1NjcxMjM=")
			eqTime(t, "expires", l.GetExpiresAt().AsTime(), time.Date(2024, 11, 14, 9, 30, 0, 0, time.UTC))
		},
	},
	"truphone/SUBSCRIPTION_END.legacy.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.truphone." + truICCID,
		iccid: truICCID, providerType: "SUBSCRIPTION_END",
	},
	"truphone/DOWNLOAD_PROGRESS.json": {
		kind: simtrailv1.Kind_KIND_LIFECYCLE, subject: "simtrail.events.lifecycle.truphone." + truICCID,
		iccid: truICCID, providerType: "DOWNLOAD_PROGRESS",
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			l := ev.GetLifecycle()
			eq(t, "name", l.GetName(), "download_progress")
			eq(t, "eid", l.GetAttributes()["eid"], "89049032004008882600013045678901")
			eq(t, "step", l.GetAttributes()["download_progress_step"], "BPP_INSTALLATION")
			eq(t, "point", l.GetAttributes()["notification_point_description"], "BPP Installation")
			eq(t, "status", l.GetAttributes()["notification_status"], "SUCCESS")
			eq(t, "sim eid", ev.GetSim().GetEid(), "89049032004008882600013045678901")
		},
	},
}

func roamifyActivated(t *testing.T, ev *simtrailv1.Event) {
	eq(t, "status", ev.GetStatus().GetStatus(), "active")
	eq(t, "status raw", ev.GetStatus().GetStatusRaw(), "ACTIVATED")
	eq(t, "sim status", ev.GetSim().GetStatus(), "active")
	p := ev.GetSim().GetPeriod()
	eq(t, "period id", p.GetId(), "")
	eqTime(t, "start", p.GetStart().AsTime(), time.Date(2025, 8, 10, 9, 12, 0, 0, time.UTC))
	eqTime(t, "end", p.GetEnd().AsTime(), time.Date(2025, 8, 17, 9, 12, 0, 0, time.UTC))
}

// roamifyUsageWant builds the expectation for one esim.usage file of the
// 3 GB / 7 day France package.
func roamifyUsageWant(at time.Time, usedMB, remainingMB int64, rows ...daily) exampleWant {
	return exampleWant{
		kind: simtrailv1.Kind_KIND_USAGE, subject: "simtrail.events.usage.roamify." + roamifyICCID,
		iccid: roamifyICCID, occurred: at, providerType: "esim/usage",
		used: i64(usedMB * mb), remaining: i64(remainingMB * mb), allowed: i64(3072 * mb),
		daily: rows,
		extra: func(t *testing.T, ev *simtrailv1.Event) {
			u := ev.GetUsage()
			eq(t, "package", u.GetPackageId(), "esim-france-7days-3gb-all")
			eq(t, "package name", u.GetPackageName(), "3 GB - 7 Days")
			eq(t, "data units", u.GetDataUnits(), "MB")
			s := ev.GetSim()
			eq(t, "period id", s.GetPeriod().GetId(), "esim-france-7days-3gb-all@1754817120")
			eq(t, "period name", s.GetPeriod().GetName(), "3 GB - 7 Days")
			eq(t, "status", s.GetStatus(), "active")
			us := s.GetUsage()
			if us.GetUnlimited() {
				t.Error("unlimited")
			}
			if us.AllowedSms == nil || us.GetAllowedSms() != 0 || us.AllowedVoiceSeconds == nil || us.GetRemainingVoiceSeconds() != 0 {
				t.Errorf("sms/voice %v", us)
			}
		},
	}
}

func eq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func eqTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func eqQty(t *testing.T, what string, got, want *int64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, fmtQty(got), fmtQty(want))
	case *got != *want:
		t.Errorf("%s = %d, want %d", what, *got, *want)
	}
}

func fmtQty(v *int64) any {
	if v == nil {
		return "unset"
	}
	return *v
}

var providerDirs = map[string]simtrailv1.Provider{
	"droam":    simtrailv1.Provider_PROVIDER_DROAM,
	"roamify":  simtrailv1.Provider_PROVIDER_ROAMIFY,
	"truphone": simtrailv1.Provider_PROVIDER_TRUPHONE,
}

// exampleFiles lists testdata/<provider>/*.json as "<provider>/<file>".
func exampleFiles(t testing.TB, provider string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", provider, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no examples for %s: %v", provider, err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = provider + "/" + filepath.Base(p)
	}
	return names
}

func TestExamples(t *testing.T) {
	for dir, provider := range providerDirs {
		for _, name := range exampleFiles(t, dir) {
			if nonWebhook[name] {
				continue
			}
			t.Run(name, func(t *testing.T) {
				want, ok := exampleWants[name]
				if !ok {
					t.Fatalf("webhook example %s has no row in exampleWants: add one (or list it in nonWebhook)", name)
				}
				raw, err := os.ReadFile(filepath.Join("testdata", name))
				if err != nil {
					t.Fatal(err)
				}
				got := mustParse(t, provider, raw)
				if got.Echo != want.echo {
					t.Fatalf("echo = %v, want %v (event %v)", got.Echo, want.echo, got.Event)
				}
				if want.echo {
					return
				}
				ev := got.Event
				if ev.GetKind() != want.kind {
					t.Fatalf("kind = %v, want %v (other: %q)", ev.GetKind(), want.kind, ev.GetOther().GetReason())
				}
				eq(t, "subject", events.Subject(ev), want.subject)
				eq(t, "iccid", ev.GetIccid(), want.iccid)
				eq(t, "provider type", ev.GetProviderType(), want.providerType)
				if want.occurred.IsZero() {
					if !ev.GetOccurredAtIsReceipt() {
						t.Error("occurred_at_is_receipt should be set")
					}
					eqTime(t, "occurred", ev.GetOccurredAt().AsTime(), receivedAt)
				} else {
					if ev.GetOccurredAtIsReceipt() {
						t.Error("occurred_at_is_receipt set for a provider time")
					}
					eqTime(t, "occurred", ev.GetOccurredAt().AsTime(), want.occurred)
				}
				u := ev.GetSim().GetUsage()
				if u == nil {
					u = &simtrailv1.UsageSnapshot{}
				}
				eqQty(t, "used", u.UsedBytes, want.used)
				eqQty(t, "remaining", u.RemainingBytes, want.remaining)
				eqQty(t, "allowed", u.AllowedBytes, want.allowed)
				if len(u.GetDaily()) != len(want.daily) {
					t.Fatalf("daily rows %v, want %v", u.GetDaily(), want.daily)
				}
				for i, d := range u.GetDaily() {
					if got := (daily{d.GetDate(), d.GetLocation(), d.GetDataBytes()}); got != want.daily[i] {
						t.Errorf("daily[%d] = %v, want %v", i, got, want.daily[i])
					}
				}
				if want.extra != nil {
					want.extra(t, ev)
				}
			})
		}
	}
}

// TestExampleTableComplete fails when a table row names a file that no
// longer exists, so the table and testdata stay in step both ways.
func TestExampleTableComplete(t *testing.T) {
	for name := range exampleWants {
		if _, err := os.Stat(filepath.Join("testdata", name)); err != nil {
			t.Errorf("table row %s: %v", name, err)
		}
	}
	for name := range nonWebhook {
		if _, err := os.Stat(filepath.Join("testdata", name)); err != nil {
			t.Errorf("nonWebhook %s: %v", name, err)
		}
		if !strings.Contains(name, "/") {
			t.Errorf("nonWebhook %s: want provider/file", name)
		}
	}
}
