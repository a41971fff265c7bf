package thresholds

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Subject types: a threshold state belongs to a SIM or to a pool.
const (
	subjectSIM  = "sim"
	subjectPool = "pool"
)

// Level sources.
const (
	sourceProvider = "provider"
	sourceComputed = "computed"
)

// observation is everything one event tells the thresholds model. It is
// derived from the event alone (never from what arrived before), which is
// what makes the fold order-independent.
type observation struct {
	subjectType string
	key         string
	provider    string
	at          int64 // provider time, unix ns
	eventID     string

	// Status and IMEI (SIMs), pool name (pools): newest provider time wins.
	status, imei, name string

	// Period observation; periodKey == "" means the event says nothing
	// about usage.
	periodKey       string
	start, end      *int64
	used, allowed   *int64
	remaining       *int64
	unlimited       bool
	reportedPercent *int32
	ended           bool

	alert *ruleAlert
}

// ruleAlert is a provider rule alert that names a rule but no level.
type ruleAlert struct {
	ruleID, name, description, direction string
}

// crossing is one level an observation shows as crossed.
type crossing struct {
	level  int
	source string
}

// hasVolumes reports whether the observation states any volume (or an
// unlimited plan): only those replace a period's snapshot columns.
func (o *observation) hasVolumes() bool {
	return o.used != nil || o.allowed != nil || o.remaining != nil || o.unlimited
}

// percent is used/allowed in percent, or nil when it cannot be known.
func (o *observation) percent() *float64 {
	if o.unlimited {
		return nil
	}
	if o.used != nil && o.allowed != nil && *o.allowed > 0 {
		p := float64(*o.used) * 100 / float64(*o.allowed)
		return &p
	}
	return nil
}

// crossings lists the configured levels this observation shows as crossed.
// A computed crossing needs used*100 >= level*allowed (integer arithmetic,
// no float edge cases). A provider report of P% crosses every level <= P:
// usage never decreases within a period, so having passed P means having
// passed every lower level too (at the latest at this time). When both
// apply, the provider source is kept for levels the report covers.
func (o *observation) crossings(levels []int) []crossing {
	if o.unlimited || o.periodKey == "" {
		return nil
	}
	var out []crossing
	for _, l := range levels {
		switch {
		case o.reportedPercent != nil && int(*o.reportedPercent) >= l:
			out = append(out, crossing{l, sourceProvider})
		case o.used != nil && o.allowed != nil && *o.allowed > 0 &&
			*o.used*100 >= int64(l)**o.allowed:
			out = append(out, crossing{l, sourceComputed})
		}
	}
	return out
}

func optInt64(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func ts(t *timestamppb.Timestamp) *int64 {
	if t == nil {
		return nil
	}
	v := t.AsTime().UnixNano()
	return &v
}

// derive turns a canonical event into an observation. ok is false for
// events the thresholds model ignores (kind other, no ICCID or pool).
func derive(ev *simtrailv1.Event, poolAllowances map[string]int64) (observation, bool) {
	if ev == nil || ev.GetKind() == simtrailv1.Kind_KIND_OTHER || ev.GetKind() == simtrailv1.Kind_KIND_UNSPECIFIED {
		return observation{}, false
	}
	o := observation{provider: events.ProviderName(ev.GetProvider()), eventID: ev.GetId()}
	if ev.GetOccurredAt() != nil {
		o.at = ev.GetOccurredAt().AsTime().UnixNano()
	} else if ev.GetReceivedAt() != nil {
		o.at = ev.GetReceivedAt().AsTime().UnixNano()
	}
	if ev.GetKind() == simtrailv1.Kind_KIND_POOL {
		return derivePool(ev, o, poolAllowances)
	}
	if !events.ValidKey(ev.GetIccid()) {
		return observation{}, false
	}
	o.subjectType, o.key = subjectSIM, ev.GetIccid()
	sim := ev.GetSim()
	o.status = sim.GetStatus()
	o.imei = sim.GetImei()
	if ev.GetImei().GetImei() != "" {
		o.imei = ev.GetImei().GetImei()
	}

	th := ev.GetThreshold()
	if th != nil && th.Percent != nil && th.GetPercent() > 0 {
		p := th.GetPercent()
		o.reportedPercent = &p
	}
	if th != nil && th.Percent == nil && th.GetRule() != nil {
		o.alert = &ruleAlert{ruleID: th.GetRule().GetId(), name: th.GetRule().GetName(),
			description: th.GetRule().GetDescription(), direction: th.GetDirection()}
	}
	lc := ev.GetLifecycle()
	o.ended = lc.GetName() == "subscription_ended"

	u := sim.GetUsage()
	hasUsage := u != nil && (u.UsedBytes != nil || u.RemainingBytes != nil || u.AllowedBytes != nil || u.GetUnlimited())
	if !hasUsage && o.reportedPercent == nil && !o.ended {
		return o, true // status / IMEI / alert only
	}
	if u != nil {
		o.used, o.remaining, o.allowed = optInt64(u.UsedBytes), optInt64(u.RemainingBytes), optInt64(u.AllowedBytes)
		o.unlimited = u.GetUnlimited()
		if o.allowed == nil && o.used != nil && o.remaining != nil {
			a := *o.used + *o.remaining
			o.allowed = &a
		}
		if o.allowed != nil && *o.allowed <= 0 && !o.unlimited {
			o.allowed = nil // "0 allowed" is no allowance statement
		}
	}
	if o.unlimited {
		o.allowed, o.reportedPercent = nil, nil
	}
	base := sim.GetPeriod().GetId()
	if base == "" {
		base = th.GetSubscriptionId()
	}
	if base == "" {
		base = lc.GetSubscriptionId()
	}
	if base == "" {
		base = "default"
	}
	o.periodKey = periodKey(base, o.allowed)
	o.start, o.end = ts(sim.GetPeriod().GetStart()), ts(sim.GetPeriod().GetEnd())
	return o, true
}

func derivePool(ev *simtrailv1.Event, o observation, poolAllowances map[string]int64) (observation, bool) {
	pl := ev.GetPool()
	id := pl.GetPoolId()
	if id == "" {
		id = ev.GetPoolId()
	}
	if !events.ValidKey(id) {
		return observation{}, false
	}
	o.subjectType, o.key = subjectPool, id
	o.name = pl.GetName()
	if r := pl.GetRule(); r != nil {
		o.alert = &ruleAlert{ruleID: r.GetId(), name: r.GetName(), description: r.GetDescription(), direction: "used"}
	}
	if pl.UsedBytes == nil {
		return o, true
	}
	o.used = optInt64(pl.UsedBytes)
	if a, ok := poolAllowances[id]; ok && a > 0 {
		o.allowed = &a
		rem := a - *o.used
		if rem < 0 {
			rem = 0
		}
		o.remaining = &rem
	}
	o.periodKey = periodKey("pool", o.allowed)
	return o, true
}

// periodKey is the period id plus the allowance when known, so a top-up
// (bigger allowance) starts a new period with re-armed levels.
func periodKey(base string, allowed *int64) string {
	if allowed == nil {
		return base
	}
	return base + "#" + strconv.FormatInt(*allowed, 10)
}

// AlertID is the deterministic id of the derived ThresholdCrossed event for
// (provider, subject key, period, level): lower hex SHA-256 of
// "provider|key|period|level", where key is alertSubjectKey's. It is the
// Nats-Msg-Id, so a republish after a crash is deduplicated by JetStream.
func AlertID(provider, key, period string, level int) string {
	sum := sha256.Sum256([]byte(provider + "|" + key + "|" + period + "|" + strconv.Itoa(level)))
	return hex.EncodeToString(sum[:])
}

// alertSubjectKey is the key AlertID hashes for a subject: the ICCID of a SIM,
// "pool:" and the id of a pool. Pool ids are provider strings, so one
// could equal an ICCID; with the same key both alerts would share an id,
// and JetStream would drop the second as a duplicate.
func alertSubjectKey(subjectType, key string) string {
	if subjectType == subjectPool {
		return "pool:" + key
	}
	return key
}

// point is one usage snapshot for the forecast.
type point struct {
	at   int64 // unix ns
	used int64
}

// ForecastWindow is how far back from the newest snapshot the burn rate looks.
const ForecastWindow = 24 * time.Hour

// Forecast is the projected exhaustion of the current period's allowance.
type Forecast struct {
	Method               string  `json:"method"`
	BurnRateBytesPerHour float64 `json:"burn_rate_bytes_per_hour"`
	ExhaustsAt           string  `json:"exhausts_at"`
	Points               int     `json:"points"`
}

// forecast fits used = a + b*t by least squares over pts (the current
// period's snapshots within ForecastWindow of the newest one) and projects
// remaining/b hours past asOf. It needs at least two distinct times and a
// positive slope; otherwise (flat, decreasing, one point) it is nil. Only
// provider times are used, never the wall clock, so it is deterministic.
func forecast(pts []point, asOf int64, remaining int64) *Forecast {
	if len(pts) < 2 || remaining <= 0 {
		return nil
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].at < pts[j].at })
	t0 := pts[0].at
	var sx, sy, sxx, sxy float64
	n := float64(len(pts))
	for _, p := range pts {
		x := float64(p.at-t0) / float64(time.Hour)
		y := float64(p.used)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if den <= 1e-12 {
		return nil // all points at the same time
	}
	slope := (n*sxy - sx*sy) / den // bytes per hour
	if !(slope > 1e-9) || math.IsInf(slope, 0) {
		return nil
	}
	hours := float64(remaining) / slope
	if hours > 24*365*100 {
		return nil // effectively flat
	}
	at := time.Unix(0, asOf).Add(time.Duration(hours * float64(time.Hour))).UTC().Truncate(time.Second)
	return &Forecast{
		Method:               "least_squares_24h",
		BurnRateBytesPerHour: math.Round(slope*10) / 10,
		ExhaustsAt:           at.Format(time.RFC3339),
		Points:               len(pts),
	}
}
