package timeline_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// genEvents makes a realistic history for nSIMs SIMs, perSIM events each,
// in provider-time order per SIM: Roamify-like SIMs send 4-hourly usage
// snapshots with per-day rows, droam-like SIMs KB counters (with a plan
// change that resets them), IMEI and status changes, thresholds and
// lifecycle events. Each SIM's events are in provider-time order; callers shuffle.
func genEvents(seed uint64, nSIMs, perSIM int) []*simtrailv1.Event {
	rng := rand.New(rand.NewPCG(seed, 99))
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var out []*simtrailv1.Event
	countries := []string{"France", "Spain", "Italy", "Germany"}
	for s := range nSIMs {
		iccid := fmt.Sprintf("89%017d", 1000+s)
		at := start.Add(time.Duration(rng.IntN(3600)) * time.Second)
		var used int64
		plan := "plan-a"
		imei := fmt.Sprintf("35%013d", s)
		daily := map[string]map[string]int64{}
		for n := range perSIM {
			at = at.Add(time.Duration(1+rng.IntN(4*3600)) * time.Second)
			raw := fmt.Appendf(nil, `{"gen":%d,"sim":%d,"n":%d}`, seed, s, n)
			ev := &simtrailv1.Event{
				Iccid: iccid, OccurredAt: timestamppb.New(at), ReceivedAt: timestamppb.New(at.Add(time.Second)), RawBody: raw,
			}
			roamify := s%3 == 0
			if roamify {
				ev.Provider = simtrailv1.Provider_PROVIDER_ROAMIFY
			} else {
				ev.Provider = simtrailv1.Provider_PROVIDER_DROAM
			}
			ev.Id = events.ID(ev.Provider, raw)
			grow := int64(rng.IntN(50 << 20))
			switch r := rng.IntN(100); {
			case r < 70: // usage snapshot
				used += grow
				if !roamify && rng.IntN(60) == 0 { // a new plan: the counter restarts
					plan = fmt.Sprintf("plan-%d", n)
					used = grow
				}
				u := &simtrailv1.UsageSnapshot{UsedBytes: proto.Int64(used), AllowedBytes: proto.Int64(10 << 30),
					RemainingBytes: proto.Int64(max(10<<30-used, 0))}
				if roamify {
					day := at.Format(time.DateOnly)
					if daily[day] == nil {
						daily[day] = map[string]int64{}
					}
					// Mostly one country a day, sometimes a border crossing.
					c := at.YearDay()/3 + min(rng.IntN(6), 1)
					daily[day][countries[c%len(countries)]] += grow
					// Roamify lists the days of the current package (7 days here).
					oldest := at.AddDate(0, 0, -7).Format(time.DateOnly)
					for d, locs := range daily {
						if d < oldest {
							continue
						}
						for loc, b := range locs {
							u.Daily = append(u.Daily, &simtrailv1.DailyUsage{Date: d, Location: loc, DataBytes: b})
						}
					}
				}
				ev.Kind = simtrailv1.Kind_KIND_USAGE
				ev.ProviderType = "esim/usage"
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: "active", Usage: u, Period: &simtrailv1.Period{Id: plan}}
				ev.Body = &simtrailv1.Event_Usage{Usage: &simtrailv1.UsageReported{PackageId: plan}}
			case r < 78:
				imei = fmt.Sprintf("35%013d", rng.IntN(1e9))
				ev.Kind = simtrailv1.Kind_KIND_IMEI
				ev.ProviderType = "rule.sim_card.imei.changed"
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Imei: imei}
				ev.Body = &simtrailv1.Event_Imei{Imei: &simtrailv1.ImeiChanged{Imei: imei, Rule: &simtrailv1.Rule{Id: "r-imei", Name: "IMEI lock"}}}
			case r < 86:
				st := []string{"active", "suspended", "pending"}[rng.IntN(3)]
				ev.Kind = simtrailv1.Kind_KIND_STATUS
				ev.ProviderType = "rule.sim_card.status.changed"
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: st, StatusRaw: st, Imei: imei, Msisdn: "3197" + iccid[10:]}
				ev.Body = &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{Status: st, StatusRaw: st}}
			case r < 94:
				ev.Kind = simtrailv1.Kind_KIND_THRESHOLD
				ev.ProviderType = "rule.sim_card.current_usage.triggered"
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Usage: &simtrailv1.UsageSnapshot{UsedBytes: proto.Int64(used)},
					Plan: &simtrailv1.Plan{Id: plan, Type: "prepaid", Name: "Plan " + plan}}
				ev.Body = &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{
					Rule: &simtrailv1.Rule{Id: "r-1g", Name: "1 GB used"}, Direction: "used"}}
			default:
				ev.Kind = simtrailv1.Kind_KIND_LIFECYCLE
				ev.ProviderType = "sim_card.first_usage"
				ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{
					Name: "first_usage", Attributes: map[string]string{"n": fmt.Sprint(n)}}}
			}
			out = append(out, ev)
		}
	}
	return out
}

// genIccids lists the ICCIDs genEvents uses.
func genIccids(nSIMs int) []string {
	out := make([]string, nSIMs)
	for s := range nSIMs {
		out[s] = fmt.Sprintf("89%017d", 1000+s)
	}
	return out
}
