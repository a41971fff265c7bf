package thresholds

import (
	"fmt"
	"math/rand/v2"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Generated pools; the first two have an operator allowance.
var genPools = []string{"pool-a", "pool-b", "pool-c"}

func genOptions() Options {
	return Options{PoolAllowances: map[string]int64{"pool-a": 40 << 30, "pool-b": 10 << 30}}
}

// genEvents builds a deterministic, realistic mix for nSIMs SIMs of the
// three providers (usage snapshots, top-ups, unlimited plans, provider
// threshold reports, subscription ends, rule alerts, status and IMEI
// changes) plus pool reports. Provider times are in order per SIM; the
// caller shuffles.
func genEvents(seed uint64, nSIMs, perSIM int) []*simtrailv1.Event {
	rng := rand.New(rand.NewPCG(seed, 99))
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var out []*simtrailv1.Event
	n := 0
	mk := func(prov simtrailv1.Provider, kind simtrailv1.Kind, iccid string, at time.Time) *simtrailv1.Event {
		n++
		return &simtrailv1.Event{Id: fmt.Sprintf("gen-%d-%06d", seed, n), Provider: prov, Kind: kind, Iccid: iccid,
			OccurredAt: timestamppb.New(at), ReceivedAt: timestamppb.New(at)}
	}
	i64 := func(v int64) *int64 { return &v }
	statuses := []string{"active", "suspended", "active", "installed"}
	for s := range nSIMs {
		prov := simtrailv1.Provider(s%3 + 1)
		iccid := fmt.Sprintf("89%02d%015d", s%3, s)
		allowed := int64(1+rng.IntN(5)) << 30
		var used int64
		period := "pkg@1"
		unlimited := s%7 == 6
		pct := int32(0)
		for k := range perSIM {
			at := base.Add(time.Duration(k)*17*time.Minute + time.Duration(rng.IntN(600))*time.Second)
			used += int64(rng.IntN(int(allowed / int64(perSIM) * 3)))
			if k == perSIM/2 && s%4 == 0 { // top-up or new package
				if prov == simtrailv1.Provider_PROVIDER_TRUPHONE {
					period, pct = "sub-2", 0
				} else {
					allowed += 2 << 30
				}
			}
			switch roll := rng.IntN(10); {
			case roll == 0:
				ev := mk(prov, simtrailv1.Kind_KIND_STATUS, iccid, at)
				st := statuses[rng.IntN(len(statuses))]
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: st}
				ev.Body = &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{Status: st}}
				out = append(out, ev)
			case roll == 1:
				ev := mk(prov, simtrailv1.Kind_KIND_IMEI, iccid, at)
				imei := fmt.Sprintf("35%013d", rng.IntN(1000))
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Imei: imei}
				ev.Body = &simtrailv1.Event_Imei{Imei: &simtrailv1.ImeiChanged{Imei: imei}}
				out = append(out, ev)
			case prov == simtrailv1.Provider_PROVIDER_TRUPHONE:
				if k == perSIM/2-1 && s%4 == 0 {
					ev := mk(prov, simtrailv1.Kind_KIND_LIFECYCLE, iccid, at)
					ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Period: &simtrailv1.Period{Id: period}, Usage: &simtrailv1.UsageSnapshot{RemainingBytes: i64(0)}}
					ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{Name: "subscription_ended", SubscriptionId: period}}
					out = append(out, ev)
					continue
				}
				if rng.IntN(3) != 0 || pct >= 100 {
					continue
				}
				pct = min(pct+int32(5+rng.IntN(20)), 100)
				ev := mk(prov, simtrailv1.Kind_KIND_THRESHOLD, iccid, at)
				p := pct
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Period: &simtrailv1.Period{Id: period}, Usage: &simtrailv1.UsageSnapshot{RemainingBytes: i64(int64(100-pct) << 20)}}
				ev.Body = &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{Percent: &p, SubscriptionId: period, Direction: "used"}}
				out = append(out, ev)
			case prov == simtrailv1.Provider_PROVIDER_DROAM:
				kind := simtrailv1.Kind_KIND_LIFECYCLE
				if rng.IntN(3) == 0 {
					kind = simtrailv1.Kind_KIND_THRESHOLD
				}
				ev := mk(prov, kind, iccid, at)
				u := min(used, allowed)
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: "active", Period: &simtrailv1.Period{Id: "plan-" + iccid[len(iccid)-3:]},
					Usage: &simtrailv1.UsageSnapshot{UsedBytes: i64(u), RemainingBytes: i64(allowed - u), AllowedBytes: i64(allowed)}}
				if kind == simtrailv1.Kind_KIND_THRESHOLD {
					ev.Body = &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{Direction: "remaining",
						Rule: &simtrailv1.Rule{Id: fmt.Sprintf("rule-%d", rng.IntN(3)), Name: "Low data", Description: "remaining below"}}}
				} else {
					ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{Name: "first_usage"}}
				}
				out = append(out, ev)
			default: // Roamify usage
				ev := mk(prov, simtrailv1.Kind_KIND_USAGE, iccid, at)
				u := min(used, allowed)
				usage := &simtrailv1.UsageSnapshot{UsedBytes: i64(u), RemainingBytes: i64(allowed - u), AllowedBytes: i64(allowed), Unlimited: unlimited}
				ev.Sim = &simtrailv1.SimSnapshot{Iccid: iccid, Status: "active", Usage: usage,
					Period: &simtrailv1.Period{Id: period, Start: timestamppb.New(base), End: timestamppb.New(base.Add(30 * 24 * time.Hour))}}
				ev.Body = &simtrailv1.Event_Usage{Usage: &simtrailv1.UsageReported{PackageId: "pkg"}}
				out = append(out, ev)
			}
		}
	}
	for i, id := range genPools {
		var used int64
		for k := range perSIM / 2 {
			at := base.Add(time.Duration(k) * 41 * time.Minute)
			used += int64(rng.IntN(1 << 30))
			n++
			ev := &simtrailv1.Event{Id: fmt.Sprintf("gen-%d-%06d", seed, n), Provider: simtrailv1.Provider_PROVIDER_DROAM,
				Kind: simtrailv1.Kind_KIND_POOL, PoolId: id, OccurredAt: timestamppb.New(at), ReceivedAt: timestamppb.New(at)}
			ev.Body = &simtrailv1.Event_Pool{Pool: &simtrailv1.PoolUsageReported{PoolId: id, Name: fmt.Sprintf("Pool %d", i), UsedBytes: i64(used),
				Rule: &simtrailv1.Rule{Id: "pool-rule", Name: "Pool usage"}}}
			out = append(out, ev)
		}
	}
	return out
}
