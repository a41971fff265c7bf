// Package timeline is the timeline projector: it folds canonical simtrail
// events into a SQLite read model of each SIM's usage history and serves it
// over HTTP (GET /v1/sims/{iccid}, /usage, /events).
//
// Ordering: the log may hold a SIM's events in any order (providers retry,
// snapshots arrive late) and may hold the same event twice. The read model
// therefore stores facts keyed by event id (INSERT OR IGNORE) and upserts
// per-day rows with "newest provider time wins, then the larger event id";
// everything that depends on order (latest status, previous IMEI, usage
// deltas between snapshots) is derived at query time from provider times.
// Any permutation of the same set of events gives byte-identical answers.
//
// The shared projection.Runner owns consumption, batching, the checkpoint
// (in the same transaction as the rows) and poison handling; this package
// only supplies the pure Apply and the query handlers.
package timeline

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/projection"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// Name is the projection's name in URLs, metrics and the checkpoint.
const Name = "timeline"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Projector implements projection.Projector for the timeline read model.
// It is safe for use by several runners (live and rebuild) at once.
type Projector struct {
	held heldTxs // writes held back per transaction (held.go)
}

// NewProjector returns the timeline projector.
func NewProjector() *Projector { return &Projector{} }

// Name implements projection.Projector.
func (p *Projector) Name() string { return Name }

// Migrations implements projection.Projector: numbered goose files at the
// root of the returned FS.
func (p *Projector) Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// Unreachable: the directory is embedded at compile time.
		return migrationFiles
	}
	return sub
}

// Apply implements projection.Projector. Events without an ICCID (pool
// events, unkeyed "other" events) are not about a SIM and are ignored.
// A second copy of an event (same id) changes nothing.
func (p *Projector) Apply(ctx context.Context, tx *sql.Tx, m projection.Message) error {
	ev := m.Event
	if !keeps(ev) {
		return nil
	}
	r := rowOf(ev)
	h := p.heldFor(tx)
	if h == nil {
		// Nobody will flush a transaction the runner did not announce.
		h = newHeldTx(false, nil)
		h.hold(r)
		return h.flush(ctx, tx)
	}
	h.hold(r)
	return nil
}

// keeps reports whether the timeline keeps anything of ev: it must be about
// one SIM.
func keeps(ev *simtrailv1.Event) bool {
	return ev != nil && ev.GetIccid() != "" && events.ValidKey(ev.GetIccid())
}

// eventRow is what one event contributes to the read model. Building it is
// pure, so it is table-tested without a database.
type eventRow struct {
	id, iccid, kind, provider, providerType string
	at                                      int64
	status, statusRaw, imei, msisdn         any // string or nil
	simType, plan, period                   any
	hasUsage                                bool
	used, remaining, allowed                any // int64 or nil
	unlimited                               bool
	detail                                  any // JSON string or nil
	snapUsed                                *int64
	periodID                                string
	daily                                   []*simtrailv1.DailyUsage
}

// eventTime is the provider time of ev (receipt time where the provider
// sends none; the parser already fills occurred_at so).
func eventTime(ev *simtrailv1.Event) int64 {
	if t := ev.GetOccurredAt(); t != nil {
		return t.AsTime().UnixNano()
	}
	if t := ev.GetReceivedAt(); t != nil {
		return t.AsTime().UnixNano()
	}
	return 0
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

// optStr is a JSON string that is null when empty.
func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTS(t *timestamppb.Timestamp) *string {
	if t == nil {
		return nil
	}
	s := formatTime(t.AsTime())
	return &s
}

// The JSON stored in plan, period and detail. Structs rather than maps:
// they marshal several times faster, and Apply runs once per event.
type (
	ruleDoc struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	planDoc struct {
		ID       *string `json:"id"`
		Type     *string `json:"type"`
		Name     *string `json:"name"`
		Operator *string `json:"operator"`
	}
	periodDoc struct {
		ID    *string `json:"id"`
		Name  *string `json:"name"`
		Start *string `json:"start"`
		End   *string `json:"end"`
	}
	statusDoc struct {
		Status    *string  `json:"status"`
		StatusRaw *string  `json:"status_raw"`
		Rule      *ruleDoc `json:"rule"`
	}
	imeiDoc struct {
		IMEI *string  `json:"imei"`
		Rule *ruleDoc `json:"rule"`
	}
	thresholdDoc struct {
		Percent        *int32   `json:"percent"`
		Rule           *ruleDoc `json:"rule"`
		Direction      *string  `json:"direction"`
		UsedBytes      *int64   `json:"used_bytes"`
		RemainingBytes *int64   `json:"remaining_bytes"`
		AllowedBytes   *int64   `json:"allowed_bytes"`
		SubscriptionID *string  `json:"subscription_id"`
		ExpiresAt      *string  `json:"expires_at"`
	}
	lifecycleDoc struct {
		Name           string            `json:"name"`
		Attributes     map[string]string `json:"attributes"`
		Rule           *ruleDoc          `json:"rule"`
		SubscriptionID *string           `json:"subscription_id"`
		ExpiresAt      *string           `json:"expires_at"`
	}
)

func ruleOf(r *simtrailv1.Rule) *ruleDoc {
	if r == nil {
		return nil
	}
	return &ruleDoc{ID: r.GetId(), Name: r.GetName(), Description: r.GetDescription()}
}

func rowOf(ev *simtrailv1.Event) eventRow {
	sim := ev.GetSim()
	u := sim.GetUsage()
	r := eventRow{
		id:           ev.GetId(),
		iccid:        ev.GetIccid(),
		kind:         events.KindName(ev.GetKind()),
		provider:     events.ProviderName(ev.GetProvider()),
		providerType: ev.GetProviderType(),
		at:           eventTime(ev),
		status:       nullStr(sim.GetStatus()),
		statusRaw:    nullStr(sim.GetStatusRaw()),
		imei:         nullStr(sim.GetImei()),
		msisdn:       nullStr(sim.GetMsisdn()),
		simType:      nullStr(sim.GetSimType()),
	}
	if st := ev.GetStatus(); st != nil && st.GetStatus() != "" {
		r.status, r.statusRaw = st.GetStatus(), nullStr(st.GetStatusRaw())
	}
	if im := ev.GetImei(); im != nil && im.GetImei() != "" {
		r.imei = im.GetImei()
	}
	if pl := sim.GetPlan(); pl != nil {
		r.plan = docString(planDoc{ID: optStr(pl.GetId()), Type: optStr(pl.GetType()), Name: optStr(pl.GetName()), Operator: optStr(pl.GetOperator())})
	}
	if pe := sim.GetPeriod(); pe != nil {
		r.period = docString(periodDoc{ID: optStr(pe.GetId()), Name: optStr(pe.GetName()), Start: optTS(pe.GetStart()), End: optTS(pe.GetEnd())})
		r.periodID = pe.GetId()
	}
	if u != nil && (u.UsedBytes != nil || u.RemainingBytes != nil || u.AllowedBytes != nil || u.GetUnlimited()) {
		r.hasUsage = true
		r.used, r.remaining, r.allowed = nullInt(u.UsedBytes), nullInt(u.RemainingBytes), nullInt(u.AllowedBytes)
		r.unlimited = u.GetUnlimited()
		switch {
		case u.UsedBytes != nil:
			v := u.GetUsedBytes()
			r.snapUsed = &v
		case u.AllowedBytes != nil && u.RemainingBytes != nil && !u.GetUnlimited():
			v := max(u.GetAllowedBytes()-u.GetRemainingBytes(), 0)
			r.snapUsed = &v
		}
	}
	if u != nil {
		r.daily = u.GetDaily()
	}
	r.detail = detailOf(ev, u)
	return r
}

// detailOf is the kind-specific part of a timeline entry, or nil for kinds
// that are not in the timeline (usage, pool, other).
func detailOf(ev *simtrailv1.Event, u *simtrailv1.UsageSnapshot) any {
	switch ev.GetKind() {
	case simtrailv1.Kind_KIND_STATUS:
		st := ev.GetStatus()
		status, raw := st.GetStatus(), st.GetStatusRaw()
		if status == "" {
			status, raw = ev.GetSim().GetStatus(), ev.GetSim().GetStatusRaw()
		}
		return docString(statusDoc{Status: optStr(status), StatusRaw: optStr(raw), Rule: ruleOf(st.GetRule())})
	case simtrailv1.Kind_KIND_IMEI:
		im := ev.GetImei()
		imei := im.GetImei()
		if imei == "" {
			imei = ev.GetSim().GetImei()
		}
		return docString(imeiDoc{IMEI: optStr(imei), Rule: ruleOf(im.GetRule())})
	case simtrailv1.Kind_KIND_THRESHOLD:
		th := ev.GetThreshold()
		if u == nil {
			u = &simtrailv1.UsageSnapshot{}
		}
		return docString(thresholdDoc{
			Percent: th.Percent, Rule: ruleOf(th.GetRule()), Direction: optStr(th.GetDirection()),
			UsedBytes: u.UsedBytes, RemainingBytes: u.RemainingBytes, AllowedBytes: u.AllowedBytes,
			SubscriptionID: optStr(th.GetSubscriptionId()), ExpiresAt: optTS(th.GetExpiresAt()),
		})
	case simtrailv1.Kind_KIND_LIFECYCLE:
		lc := ev.GetLifecycle()
		attrs := lc.GetAttributes()
		if attrs == nil {
			attrs = map[string]string{}
		}
		return docString(lifecycleDoc{
			Name: lc.GetName(), Attributes: attrs, Rule: ruleOf(lc.GetRule()),
			SubscriptionID: optStr(lc.GetSubscriptionId()), ExpiresAt: optTS(lc.GetExpiresAt()),
		})
	}
	return nil
}

// formatTime renders an instant as RFC 3339 UTC (fractional seconds only
// when present).
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// DeferredIndexes implements projection.IndexDeferrer: Apply writes
// sim_event by its id only; the (iccid, at, id) index serves the queries.
func (p *Projector) DeferredIndexes() []projection.DeferredIndex {
	return []projection.DeferredIndex{{
		Name:   "sim_event_iccid_at",
		Create: `CREATE INDEX IF NOT EXISTS sim_event_iccid_at ON sim_event(iccid, at, id)`,
	}}
}
