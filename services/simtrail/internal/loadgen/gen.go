// Package loadgen generates realistic, correctly signed provider webhooks
// for a fleet of simulated SIMs and sends them to a simtrail ingest at a
// target rate.
//
// The generation half (this file) is pure and deterministic for a seed: a
// Generator owns a shard of the fleet, keeps each SIM's state (package,
// per-day usage, balance, IMEI, status) so that usage grows monotonically
// within a period and days roll over, and builds each body by appending to a
// byte slice from fixed template fragments, so one request costs one body
// allocation and no encoding/json. Retried deliveries (duplicates of bytes
// already sent) and late deliveries (an older event of a SIM sent after a
// newer one) are mixed in at configurable rates.
package loadgen

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/simtrail/simtrail/services/ingest/providers"
)

// Provider names, as in the webhook routes.
const (
	Droam    = "droam"
	Roamify  = "roamify"
	Truphone = "truphone"
)

// Provider event types the generator emits.
const (
	TypeRoamifyUsage      = "esim/usage"
	TypeRoamifyStatus     = "esim/status"
	TypeDroamCurrentUsage = "rule.sim_card.current_usage.triggered"
	TypeDroamRemaining    = "rule.sim_card.remaining_usage.triggered"
	TypeDroamStatus       = "rule.sim_card.status.changed"
	TypeDroamIMEI         = "rule.sim_card.imei.changed"
	TypeTruphoneThreshold = "USAGE_THRESHOLD"
	TypeTruphoneEnd       = "SUBSCRIPTION_END"
)

// Secrets sign the requests; the zero value means the dev-mode values.
type Secrets struct {
	Droam         string
	Roamify       string
	TruphoneToken string
}

// DevSecrets are the values `simtrail dev` accepts.
var DevSecrets = Secrets{Droam: "dev-droam-secret", Roamify: "dev-roamify-secret", TruphoneToken: "dev-truphone-token"}

// Config shapes the generated traffic.
type Config struct {
	// Sims is the fleet size (default 1000).
	Sims int
	// Seed makes the traffic reproducible.
	Seed uint64
	// DuplicateRate is the share of requests that resend bytes already sent
	// (a provider retry); default 0.03. Negative disables.
	DuplicateRate float64
	// OutOfOrderRate is the share of requests that deliver a SIM's event
	// after a newer one of the same SIM; default 0.05. Negative disables.
	OutOfOrderRate float64
	// Start is the simulated provider time of the fleet's first events
	// (default: 20 days before now, midnight UTC). Each SIM's clock then
	// advances by 5 minutes to 2 hours per event.
	Start   time.Time
	Secrets Secrets
}

func (c *Config) defaults() {
	if c.Sims <= 0 {
		c.Sims = 1000
	}
	if c.DuplicateRate == 0 {
		c.DuplicateRate = 0.03
	}
	if c.OutOfOrderRate == 0 {
		c.OutOfOrderRate = 0.05
	}
	c.DuplicateRate = max(c.DuplicateRate, 0)
	c.OutOfOrderRate = min(max(c.OutOfOrderRate, 0), 0.5)
	if c.Start.IsZero() {
		c.Start = time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(24 * time.Hour)
	}
	if c.Secrets.Droam == "" {
		c.Secrets.Droam = DevSecrets.Droam
	}
	if c.Secrets.Roamify == "" {
		c.Secrets.Roamify = DevSecrets.Roamify
	}
	if c.Secrets.TruphoneToken == "" {
		c.Secrets.TruphoneToken = DevSecrets.TruphoneToken
	}
}

// Request is one webhook delivery. Body is never modified after it is
// built, so a duplicate shares it with the original.
type Request struct {
	Provider string
	Type     string
	ICCID    string
	Body     []byte
	// Signature is Roamify's X-Roamify-Signature (droam signs a timestamp
	// at send time, Truphone authenticates by path).
	Signature string
	// Duplicate marks a resend of bytes already sent.
	Duplicate bool
	// OutOfOrder marks an event sent after a newer event of the same SIM.
	OutOfOrder bool
	// UsedBytes is the SIM's usage in this event's period, where the event
	// states it (-1 otherwise); PeriodID names that period. Tests use them.
	UsedBytes int64
	PeriodID  string
	// At is the event's provider time (for Truphone, which sends none, the
	// simulated time it was generated at).
	At time.Time
}

// Path is the webhook route of the request.
func (r *Request) Path(s Secrets) string {
	switch r.Provider {
	case Droam:
		return "/webhooks/droam"
	case Roamify:
		return "/webhooks/roamify"
	default:
		return "/webhooks/truphone/" + s.TruphoneToken
	}
}

// Sign sets the provider's authentication headers on h; droam's signature
// covers the current time, so it is computed at send time.
func (r *Request) Sign(h http.Header, s Secrets, now time.Time) {
	h.Set("Content-Type", "application/json")
	switch r.Provider {
	case Droam:
		hash, ts := providers.SignDroam(s.Droam, now)
		h.Set("X-Hash", hash)
		h.Set("X-Timestamp", ts)
	case Roamify:
		h.Set("X-Roamify-Signature", r.Signature)
	}
}

const mib = 1 << 20

var (
	countries = []string{"France", "Germany", "Spain", "Italy", "Netherlands", "Portugal", "Austria", "Belgium", "Poland", "Greece"}
	levels    = []int{25, 50, 75, 80, 90, 100}
)

type dayRow struct {
	date string
	loc  int
	mb   int64
}

// sim is one simulated SIM's provider-side state.
type sim struct {
	provider string
	iccid    string
	uuid     string // esim_id / rule uuid / subscription seed
	msisdn   string
	imei     string
	clock    time.Time
	status   int // droam: 3 active, 5 suspended

	// Roamify package.
	pkgN       int
	pkgDays    int
	pkgStart   time.Time
	allowedMB  int64
	usedMB     int64
	rows       []dayRow
	loc        int
	needStatus bool // the next event announces the package's activation

	// droam counters in KB.
	usedKB, planKB int64

	// Truphone subscription.
	subN      int
	levelIdx  int
	allowance int64
}

type held struct {
	req     *Request
	release uint64
}

// Generator produces the traffic of one shard of the fleet. It is not safe
// for concurrent use; give each sender its own shard, or lock.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	sims    []*sim
	ring    []*Request // recently emitted originals, for duplicates
	ringPos int
	held    []held
	emitted uint64
	pairP   float64 // probability of generating an out-of-order pair
	dupP    float64
	ringMax int
}

// ringTotal bounds the requests all shards of a fleet keep for
// duplicates: with 64 shards of 4096 bodies each, the generator alone held
// 400 MiB.
const ringTotal = 8192

// NewGenerator builds shard `shard` of `shards` of the fleet described by
// cfg: the SIMs whose index i satisfies i % shards == shard. ICCIDs depend
// only on the index, so shards never overlap and a fleet is the same
// whatever the sharding.
func NewGenerator(cfg Config, shard, shards int) *Generator {
	cfg.defaults()
	if shards <= 0 {
		shards = 1
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(shard)+1)), ringMax: max(ringTotal/shards, 64)}
	q := cfg.OutOfOrderRate / (1 - cfg.OutOfOrderRate)
	g.pairP = q
	g.dupP = cfg.DuplicateRate * (1 + q)
	for i := shard; i < cfg.Sims; i += shards {
		g.sims = append(g.sims, g.newSim(i))
	}
	return g
}

// ICCID returns the ICCID of SIM i of a fleet: 19 digits, a provider
// prefix, the index and a Luhn check digit.
func ICCID(i int) string {
	prefix := [...]string{"8910300000", "8937204016", "8944474600"}[i%3]
	s := fmt.Sprintf("%s%08d", prefix, i)
	return s + string(rune('0'+luhn(s)))
}

// ProviderOf is the provider of SIM i (roamify, droam, truphone in turn).
func ProviderOf(i int) string { return [...]string{Roamify, Droam, Truphone}[i%3] }

func luhn(s string) int {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}

// Sims is the number of SIMs in this shard.
func (g *Generator) Sims() int { return len(g.sims) }

func (g *Generator) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return hex.EncodeToString(b)
}

func (g *Generator) uuid() string {
	h := g.hex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
}

func (g *Generator) imei() string {
	return fmt.Sprintf("35%013d", g.rng.Int64N(1e13))
}

func (g *Generator) newSim(i int) *sim {
	s := &sim{
		provider: ProviderOf(i),
		iccid:    ICCID(i),
		uuid:     g.uuid(),
		msisdn:   fmt.Sprintf("3197%010d", i),
		imei:     g.imei(),
		clock:    g.cfg.Start.Add(time.Duration(g.rng.Int64N(int64(24 * time.Hour)))),
		status:   3,
		loc:      g.rng.IntN(len(countries)),
	}
	switch s.provider {
	case Roamify:
		g.newPackage(s)
	case Droam:
		s.planKB = int64(5+g.rng.IntN(6)) * 1024 * 1024
	case Truphone:
		s.allowance = int64(1+g.rng.IntN(10)) << 30
	}
	return s
}

func (g *Generator) newPackage(s *sim) {
	s.pkgN++
	s.pkgDays = [...]int{7, 15, 30}[g.rng.IntN(3)]
	s.allowedMB = int64([...]int{1, 3, 5, 10, 20}[g.rng.IntN(5)]) * 1024
	s.pkgStart = s.clock.Truncate(time.Second)
	s.usedMB = 0
	s.rows = s.rows[:0]
	s.needStatus = true
}

// Next returns the next request of the shard.
func (g *Generator) Next() *Request {
	g.emitted++
	for i, h := range g.held {
		if h.release <= g.emitted {
			g.held = append(g.held[:i], g.held[i+1:]...)
			g.remember(h.req)
			return h.req
		}
	}
	r := g.rng.Float64()
	if r < g.dupP && g.ring != nil {
		orig := g.ring[g.rng.IntN(len(g.ring))]
		dup := *orig
		dup.Duplicate, dup.OutOfOrder = true, false
		return &dup
	}
	s := g.sims[g.rng.IntN(len(g.sims))]
	if r < g.dupP+g.pairP {
		older := g.event(s)
		older.OutOfOrder = true
		// Held for 1–8 of this shard's requests: late, but sent before a
		// short run ends (with 64 shards that is up to ~500 requests overall).
		g.held = append(g.held, held{req: older, release: g.emitted + 1 + uint64(g.rng.IntN(8))})
	}
	req := g.event(s)
	g.remember(req)
	return req
}

func (g *Generator) remember(r *Request) {
	if len(g.ring) < g.ringMax {
		g.ring = append(g.ring, r)
		return
	}
	g.ring[g.ringPos] = r
	g.ringPos = (g.ringPos + 1) % g.ringMax
}

// event advances s and renders its next webhook.
func (g *Generator) event(s *sim) *Request {
	s.clock = s.clock.Add(5*time.Minute + time.Duration(g.rng.Int64N(int64(115*time.Minute))))
	var req *Request
	switch s.provider {
	case Roamify:
		req = g.roamify(s)
	case Droam:
		req = g.droam(s)
	default:
		req = g.truphone(s)
	}
	req.Provider, req.ICCID = s.provider, s.iccid
	if req.At.IsZero() {
		req.At = s.clock
	}
	return req
}

// --- Roamify ---------------------------------------------------------------

func (g *Generator) roamify(s *sim) *Request {
	end := s.pkgStart.Add(time.Duration(s.pkgDays) * 24 * time.Hour)
	if !s.needStatus && (s.usedMB >= s.allowedMB || !s.clock.Before(end)) {
		status := "EXPIRED"
		if s.usedMB >= s.allowedMB {
			status = "DEPLETED"
		}
		req := g.roamifyStatus(s, status, end)
		g.newPackage(s)
		return req
	}
	if s.needStatus {
		s.needStatus = false
		return g.roamifyStatus(s, "ACTIVATED", end)
	}
	date := s.clock.Format(time.DateOnly)
	if g.rng.IntN(20) == 0 {
		s.loc = g.rng.IntN(len(countries)) // crossed a border
	}
	if n := len(s.rows); n == 0 || s.rows[n-1].date != date || s.rows[n-1].loc != s.loc {
		// Keep the list bounded like a package's: one row per (day, country).
		found := false
		for i := range s.rows {
			if s.rows[i].date == date && s.rows[i].loc == s.loc {
				r := s.rows[i]
				copy(s.rows[i:], s.rows[i+1:])
				s.rows[len(s.rows)-1] = r
				found = true
				break
			}
		}
		if !found {
			s.rows = append(s.rows, dayRow{date: date, loc: s.loc})
		}
	}
	add := min(1+g.rng.Int64N(120), s.allowedMB-s.usedMB)
	s.rows[len(s.rows)-1].mb += add
	s.usedMB += add

	b := make([]byte, 0, 640+len(s.rows)*64)
	b = append(b, `{"event_category":"esim","event_type":"usage","data":{"timestamp":`...)
	b = strconv.AppendInt(b, s.clock.Unix(), 10)
	b = g.roamifyCommon(b, s, "ACTIVATED", end)
	b = append(b, `,"package_id":"esim-europe-`...)
	b = strconv.AppendInt(b, int64(s.pkgDays), 10)
	b = append(b, `days-`...)
	b = strconv.AppendInt(b, s.allowedMB/1024, 10)
	b = append(b, `gb-all","package_name":"`...)
	b = strconv.AppendInt(b, s.allowedMB/1024, 10)
	b = append(b, ` GB - `...)
	b = strconv.AppendInt(b, int64(s.pkgDays), 10)
	b = append(b, ` Days","data_units":"MB","voice_units":"minutes","sms_units":"sms","usage_data":{"isUnlimited":false,"allowed_data":`...)
	b = strconv.AppendInt(b, s.allowedMB, 10)
	b = append(b, `,"remaining_data":`...)
	b = strconv.AppendInt(b, s.allowedMB-s.usedMB, 10)
	b = append(b, `,"allowed_sms":0,"remaining_sms":0,"allowed_voice":0,"remaining_voice":0},"usage_list":[`...)
	for i, r := range s.rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"date":"`...)
		b = append(b, r.date...)
		b = append(b, `","data_used":`...)
		b = strconv.AppendInt(b, r.mb, 10)
		b = append(b, `,"location":"`...)
		b = append(b, countries[r.loc]...)
		b = append(b, `"}`...)
	}
	b = append(b, `]}}`...)
	return &Request{Type: TypeRoamifyUsage, Body: b, Signature: providers.SignRoamify(g.cfg.Secrets.Roamify, b),
		UsedBytes: s.usedMB * mib, PeriodID: s.periodID()}
}

func (s *sim) periodID() string {
	return "esim-europe@" + strconv.FormatInt(s.pkgStart.Unix(), 10) + "#" + strconv.Itoa(s.pkgN)
}

func (g *Generator) roamifyCommon(b []byte, s *sim, status string, end time.Time) []byte {
	b = append(b, `,"iccid":"`...)
	b = append(b, s.iccid...)
	b = append(b, `","esim_id":"`...)
	b = append(b, s.uuid...)
	b = append(b, `","reference_id":"ord-`...)
	b = append(b, s.iccid[10:]...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(s.pkgN), 10)
	b = append(b, `","start":`...)
	b = strconv.AppendInt(b, s.pkgStart.Unix(), 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, end.Unix(), 10)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, '"')
	return b
}

func (g *Generator) roamifyStatus(s *sim, status string, end time.Time) *Request {
	b := make([]byte, 0, 320)
	b = append(b, `{"event_category":"esim","event_type":"status","data":{"timestamp":`...)
	b = strconv.AppendInt(b, s.clock.Unix(), 10)
	b = g.roamifyCommon(b, s, status, end)
	b = append(b, `}}`...)
	return &Request{Type: TypeRoamifyStatus, Body: b, Signature: providers.SignRoamify(g.cfg.Secrets.Roamify, b), UsedBytes: -1}
}

// --- droam -----------------------------------------------------------------

func (g *Generator) droam(s *sim) *Request {
	typ := TypeDroamCurrentUsage
	switch x := g.rng.IntN(100); {
	case x < 8:
		typ = TypeDroamStatus
		if s.status == 3 {
			s.status = 5
		} else {
			s.status = 3
		}
	case x < 14:
		typ = TypeDroamIMEI
		s.imei = g.imei()
	case x < 30:
		typ = TypeDroamRemaining
	}
	if typ == TypeDroamCurrentUsage || typ == TypeDroamRemaining {
		s.usedKB += 1 + g.rng.Int64N(100*1024)
		if s.usedKB > s.planKB {
			s.planKB += 5 * 1024 * 1024 // a refill
		}
	}
	b := make([]byte, 0, 900)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","data":{"rule":{"uuid":"`...)
	b = append(b, s.uuid...)
	b = append(b, `","name":"`...)
	switch typ {
	case TypeDroamStatus:
		b = append(b, `Notify on status change","description":"Push when the SIM status changes"`...)
	case TypeDroamIMEI:
		b = append(b, `IMEI lock","description":"Notify when the device IMEI changes"`...)
	case TypeDroamRemaining:
		b = append(b, `Prepaid: low data left","description":"Send notification when remaining data falls below the limit"`...)
	default:
		b = append(b, `Subscription: usage step","description":"Notify when billing-cycle usage grows"`...)
	}
	b = append(b, `},"sim_card":{"iccid":"`...)
	b = append(b, s.iccid...)
	b = append(b, `","sim_card_type":"prepaid","msisdn":"`...)
	b = append(b, s.msisdn...)
	b = append(b, `","imei":"`...)
	b = append(b, s.imei...)
	b = append(b, `","is_e_sim":false,"status":{"id":`...)
	b = strconv.AppendInt(b, int64(s.status), 10)
	if s.status == 3 {
		b = append(b, `,"title":"active"}`...)
	} else {
		b = append(b, `,"title":"suspended"}`...)
	}
	b = append(b, `,"plan":{"uuid":"3f9a1b7e-5c2d-4e8f-a6b0-91d4c7e2f358","type":"prepaid","name":"EU Prepaid","operator_title":"Demo Operator (Integration)"},"company":{"uuid":"0b6d8c52-4e1f-4a57-9c3e-5d2a7f18e904","name":"Nordlys Logistics BV","status":{"id":3,"title":"active"},"currency_code":"EUR"},"details":{"current_usage_kb":`...)
	b = strconv.AppendInt(b, s.usedKB, 10)
	b = append(b, `,"remaining_usage_kb":`...)
	b = strconv.AppendInt(b, s.planKB-s.usedKB, 10)
	b = append(b, `}}},"created_at":{"unix_timestamp":`...)
	b = strconv.AppendInt(b, s.clock.Unix(), 10)
	b = append(b, `,"human_time":"`...)
	b = s.clock.UTC().AppendFormat(b, time.TimeOnly)
	b = append(b, `","human_date":"`...)
	b = s.clock.UTC().AppendFormat(b, time.DateOnly)
	b = append(b, `","timezone":"UTC"}}`...)
	return &Request{Type: typ, Body: b, UsedBytes: s.usedKB * 1024, PeriodID: "droam"}
}

// --- Truphone --------------------------------------------------------------

func (g *Generator) truphone(s *sim) *Request {
	typ := TypeTruphoneThreshold
	level := 0
	if s.levelIdx >= len(levels) {
		typ = TypeTruphoneEnd
	} else {
		level = levels[s.levelIdx]
	}
	sub := s.uuid[:8] + "-sub-" + strconv.Itoa(s.subN)
	var balance, used int64
	if typ == TypeTruphoneThreshold {
		used = s.allowance / 100 * int64(level)
		balance = s.allowance - used
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"id":"`...)
	b = append(b, g.uuid()...)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","iccid":"`...)
	b = append(b, s.iccid...)
	b = append(b, `","subscription_id":"`...)
	b = append(b, sub...)
	b = append(b, '"')
	if typ == TypeTruphoneThreshold {
		b = append(b, `,"threshold":`...)
		b = strconv.AppendInt(b, int64(level), 10)
	}
	b = append(b, `,"expiration_date":"`...)
	b = s.clock.Add(30*24*time.Hour).UTC().Truncate(time.Second).AppendFormat(b, time.RFC3339)
	b = append(b, `","current_balance":`...)
	b = strconv.AppendInt(b, balance, 10)
	b = append(b, '}')
	req := &Request{Type: typ, Body: b, UsedBytes: -1, PeriodID: sub}
	if typ == TypeTruphoneThreshold {
		req.UsedBytes = used
		s.levelIdx++
	} else {
		s.levelIdx = 0
		s.subN++
		s.allowance = int64(1+g.rng.IntN(10)) << 30
	}
	return req
}
