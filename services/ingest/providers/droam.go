package providers

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// droam type names (providers/droam.md §4).
const (
	droamEcho              = "echo"
	droamAssigned          = "sim_card.assigned_to_end_user"
	droamFirstUsage        = "sim_card.first_usage"
	droamCurrentUsage      = "rule.sim_card.current_usage.triggered"
	droamStatusChanged     = "rule.sim_card.status.changed"
	droamRemainingUsage    = "rule.sim_card.remaining_usage.triggered"
	droamRemainingUsageAlt = "rule.sim_card.remaining_usage_triggered" // the doc caption's spelling
	droamIMEIChanged       = "rule.sim_card.imei.changed"
	droamDateTriggered     = "rule.sim_card.date.triggered"
	droamPoolUsage         = "rule.pool.usage.triggered"
)

// maxEchoData and isEchoAlphabet follow the endpoint validation page: at
// most 50 characters of Latin letters, digits and ':'. Anything else is not
// echoed, so the endpoint cannot be used to reflect arbitrary content.
const maxEchoData = 50

// droamBody is what ParseDroam reads from a body in one pass (scan.go).
// The raw members are what json.RawMessage fields held before: the last
// value sent under the key.
type droamBody struct {
	Type      text
	CreatedAt flexNumber // created_at.unix_timestamp
	EchoData  []byte     // the flat echo shape's echo_data, raw
	Data      []byte     // raw
	// The models of data, from its last value when that is an object. Like
	// the raw members they hold the last value of their key, with no
	// merging: a model that is not an object is nil.
	DataEchoData []byte // raw
	SimCard      *droamSimCard
	Rule         *droamRule
	Pool         *droamPool
}

func decodeDroam(s *scanner, b *droamBody) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("type"):
			s.text(&b.Type)
		case s.is("data"):
			b.DataEchoData, b.SimCard, b.Rule, b.Pool = nil, nil, nil, nil
			start := s.mark()
			if s.peek() == '{' {
				decodeDroamData(s, b)
			} else {
				s.skip()
			}
			b.Data = s.since(start)
		case s.is("created_at"):
			// A struct, not a pointer: objects merge, anything else is
			// skipped.
			if s.peek() != '{' {
				s.skip()
				break
			}
			for more := s.openObject(); more; more = s.nextMember() {
				if s.is("unix_timestamp") {
					s.num(&b.CreatedAt)
				} else {
					s.skip()
				}
			}
		case s.is("echo_data"):
			b.EchoData = s.value()
		default:
			s.skip()
		}
	}
}

func decodeDroamData(s *scanner, b *droamBody) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("echo_data"):
			b.DataEchoData = s.value()
		case s.is("sim_card"):
			b.SimCard = object(s, decodeDroamSimCard)
		case s.is("rule"):
			b.Rule = object(s, decodeDroamRule)
		case s.is("pool"):
			b.Pool = object(s, decodeDroamPool)
		default:
			s.skip()
		}
	}
}

// The json tags name the keys; reference_test.go still decodes these
// types with encoding/json to check scan.go against it.

type droamRule struct {
	UUID        flexString `json:"uuid"`
	Name        text       `json:"name"`
	Description text       `json:"description"`
}

func decodeDroamRule(s *scanner, r *droamRule) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("uuid"):
			s.id(&r.UUID)
		case s.is("name"):
			s.text(&r.Name)
		case s.is("description"):
			s.text(&r.Description)
		default:
			s.skip()
		}
	}
}

type droamAccount struct {
	UUID flexString `json:"uuid"`
	Name text       `json:"name"`
}

func decodeDroamAccount(s *scanner, a *droamAccount) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("uuid"):
			s.id(&a.UUID)
		case s.is("name"):
			s.text(&a.Name)
		default:
			s.skip()
		}
	}
}

type droamStatus struct {
	ID    flexNumber `json:"id"`
	Title text       `json:"title"`
}

func decodeDroamStatus(s *scanner, st *droamStatus) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("id"):
			s.num(&st.ID)
		case s.is("title"):
			s.text(&st.Title)
		default:
			s.skip()
		}
	}
}

type droamPlan struct {
	UUID          flexString `json:"uuid"`
	Type          text       `json:"type"`
	Name          text       `json:"name"`
	OperatorTitle text       `json:"operator_title"`
}

func decodeDroamPlan(s *scanner, p *droamPlan) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("uuid"):
			s.id(&p.UUID)
		case s.is("type"):
			s.text(&p.Type)
		case s.is("name"):
			s.text(&p.Name)
		case s.is("operator_title"):
			s.text(&p.OperatorTitle)
		default:
			s.skip()
		}
	}
}

type droamSimCard struct {
	ICCID       flexString    `json:"iccid"`
	SimCardType text          `json:"sim_card_type"`
	MSISDN      flexString    `json:"msisdn"`
	IMEI        flexString    `json:"imei"`
	IsESim      flexBool      `json:"is_e_sim"`
	Status      *droamStatus  `json:"status"`
	Plan        *droamPlan    `json:"plan"`
	Company     *droamAccount `json:"company"`
	EndUser     *droamAccount `json:"end_user"`
	// Details is usage in KB. PHP serialises an empty associative array
	// as [], which is skipped as a wrong-typed value, leaving the map nil.
	Details map[string]flexNumber `json:"details"`
}

// droamDetailKeys are the details counters droamUsage reads; other keys
// are not stored.
var droamDetailKeys = [...]string{"current_usage_kb", "remaining_usage_kb"}

func decodeDroamSimCard(s *scanner, c *droamSimCard) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("iccid"):
			s.id(&c.ICCID)
		case s.is("sim_card_type"):
			s.text(&c.SimCardType)
		case s.is("msisdn"):
			s.id(&c.MSISDN)
		case s.is("imei"):
			s.id(&c.IMEI)
		case s.is("is_e_sim"):
			s.flag(&c.IsESim)
		case s.is("status"):
			pointer(s, &c.Status, decodeDroamStatus)
		case s.is("plan"):
			pointer(s, &c.Plan, decodeDroamPlan)
		case s.is("company"):
			pointer(s, &c.Company, decodeDroamAccount)
		case s.is("end_user"):
			pointer(s, &c.EndUser, decodeDroamAccount)
		case s.is("details"):
			decodeDroamDetails(s, &c.Details)
		default:
			s.skip()
		}
	}
}

// decodeDroamDetails decodes details as encoding/json decodes into a map:
// null clears it, an object is merged into it by exact key, anything else
// is skipped.
func decodeDroamDetails(s *scanner, m *map[string]flexNumber) {
	switch s.peek() {
	case 'n':
		s.skip()
		*m = nil
		return
	case '{':
	default:
		s.skip()
		return
	}
	if *m == nil {
		*m = make(map[string]flexNumber, len(droamDetailKeys))
	}
members:
	for more := s.openObject(); more; more = s.nextMember() {
		for _, k := range droamDetailKeys {
			if s.isExact(k) {
				var n flexNumber
				s.num(&n)
				(*m)[k] = n
				continue members
			}
		}
		s.skip()
	}
}

type droamPool struct {
	UUID           flexString `json:"uuid"`
	Name           text       `json:"name"`
	CurrentUsageKB flexNumber `json:"current_usage_kb"`
}

func decodeDroamPool(s *scanner, p *droamPool) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("uuid"):
			s.id(&p.UUID)
		case s.is("name"):
			s.text(&p.Name)
		case s.is("current_usage_kb"):
			s.num(&p.CurrentUsageKB)
		default:
			s.skip()
		}
	}
}

// ParseDroam converts one authenticated droam Push API body. A valid echo
// request yields Parsed{Echo: true} and no event. It never panics; the only
// error is a wrapped ErrNotJSON.
func ParseDroam(raw []byte, receivedAt time.Time) (Parsed, error) {
	var b droamBody
	valid, isObj := scanBody(raw, &b, decodeDroam)
	return droamParsed(raw, receivedAt, valid, isObj, &b)
}

// droamParsed makes the result from a decoded body (reference_test.go
// feeds it from the old encoding/json decoding too).
func droamParsed(raw []byte, receivedAt time.Time, valid, isObj bool, b *droamBody) (Parsed, error) {
	if !valid {
		return Parsed{}, fmt.Errorf("droam: %w", ErrNotJSON)
	}
	ev := newEvent(simtrailv1.Provider_PROVIDER_DROAM, raw, receivedAt)
	if !isObj {
		setOther(ev, "body is "+jsonKind(raw)+", not an object")
		return Parsed{Event: ev}, nil
	}
	typ := clip(string(b.Type), maxTypeLen)
	ev.ProviderType = typ
	setOccurred(ev, b.CreatedAt)
	dataOK := isObject(b.Data)

	if typ == droamEcho {
		echo := b.EchoData
		if !present(echo) {
			echo = b.DataEchoData
		}
		if validEcho(echo) {
			return Parsed{Echo: true}, nil
		}
		setOther(ev, "invalid echo: echo_data must be 1-50 characters of A-Z, a-z, 0-9 and ':'")
		return Parsed{Event: ev}, nil
	}

	sc := b.SimCard
	if sc != nil {
		ev.Sim = droamSnapshot(sc)
	}
	var r *simtrailv1.Rule
	if dr := b.Rule; dr != nil {
		r = rule(dr.UUID, dr.Name, dr.Description)
	}

	switch {
	case typ == "":
		setOther(ev, "missing type")
	case present(b.Data) && !dataOK:
		setOther(ev, "data is "+jsonKind(b.Data)+", not an object")
	case typ == droamPoolUsage:
		droamPoolEvent(ev, b.Pool, r)
	case isDroamAccountType(typ):
		setOther(ev, "not a SIM event")
	case !isDroamSimType(typ):
		setOther(ev, "unknown type")
	case sc == nil:
		setOther(ev, "missing sim_card")
	default:
		droamSimEvent(ev, typ, sc, r)
	}
	iccid, need := "", iccidRequired
	if sc != nil {
		iccid = string(sc.ICCID)
	}
	if ev.Kind == simtrailv1.Kind_KIND_POOL {
		need = iccidOptional // a pool event is keyed by the pool
	}
	applyICCID(ev, iccid, need)
	return Parsed{Event: ev}, nil
}

// validEcho reports whether v is a JSON string in the documented echo_data
// alphabet and length.
func validEcho(v json.RawMessage) bool {
	if jsonKind(v) != "a string" {
		return false
	}
	var s string
	if json.Unmarshal(v, &s) != nil || s == "" || len(s) > maxEchoData {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':') {
			return false
		}
	}
	return true
}

// isDroamAccountType reports the documented families that are about
// accounts, wallets and payments rather than a SIM.
func isDroamAccountType(typ string) bool {
	for _, p := range []string{"company.", "end_user.", "payment.", "rule.wallet."} {
		if strings.HasPrefix(typ, p) {
			return true
		}
	}
	return false
}

func isDroamSimType(typ string) bool {
	switch typ {
	case droamAssigned, droamFirstUsage, droamCurrentUsage, droamStatusChanged,
		droamRemainingUsage, droamRemainingUsageAlt, droamIMEIChanged, droamDateTriggered:
		return true
	}
	return false
}

// droamSimEvent sets the kind and body of a SIM event of a known type.
func droamSimEvent(ev *simtrailv1.Event, typ string, sc *droamSimCard, r *simtrailv1.Rule) {
	switch typ {
	case droamStatusChanged:
		if sc.Status == nil || strings.TrimSpace(string(sc.Status.Title)) == "" {
			setOther(ev, "missing status title")
			return
		}
		ev.Kind = simtrailv1.Kind_KIND_STATUS
		ev.Body = &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{
			Status:    normStatus(string(sc.Status.Title)),
			StatusRaw: string(sc.Status.Title),
			StatusId:  clip(sc.Status.ID.String(), maxTypeLen),
			Rule:      r,
		}}
	case droamIMEIChanged:
		imei := digitsOnly(string(sc.IMEI))
		if imei == "" {
			setOther(ev, fmt.Sprintf("missing or invalid imei: %s", strconv.Quote(clip(string(sc.IMEI), 40))))
			return
		}
		ev.Kind = simtrailv1.Kind_KIND_IMEI
		ev.Body = &simtrailv1.Event_Imei{Imei: &simtrailv1.ImeiChanged{
			Imei: imei, ImeiRaw: string(sc.IMEI), Rule: r,
		}}
	case droamCurrentUsage, droamRemainingUsage, droamRemainingUsageAlt:
		dir := "remaining"
		if typ == droamCurrentUsage {
			dir = "used"
		}
		ev.Kind = simtrailv1.Kind_KIND_THRESHOLD
		ev.Body = &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{
			Rule: r, Direction: dir,
		}}
	default:
		var name string
		switch typ {
		case droamAssigned:
			name = "assigned_to_end_user"
		case droamFirstUsage:
			name = "first_usage"
		case droamDateTriggered:
			name = "date_triggered"
		}
		ev.Kind = simtrailv1.Kind_KIND_LIFECYCLE
		ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{
			Name: name, Rule: r,
		}}
	}
}

// droamPoolEvent fills a rule.pool.usage.triggered event. The pool uuid is
// the subject key only when it is a safe subject token; otherwise the event
// is keyed "_" but still carries the uuid as sent in its body.
func droamPoolEvent(ev *simtrailv1.Event, p *droamPool, r *simtrailv1.Rule) {
	if p == nil {
		setOther(ev, "missing pool")
		return
	}
	id := strings.TrimSpace(string(p.UUID))
	if events.ValidKey(id) {
		ev.PoolId = id
	}
	ev.Kind = simtrailv1.Kind_KIND_POOL
	ev.Body = &simtrailv1.Event_Pool{Pool: &simtrailv1.PoolUsageReported{
		PoolId:    string(p.UUID),
		Name:      string(p.Name),
		UsedBytes: qty(p.CurrentUsageKB, kib),
		Rule:      r,
	}}
}

// droamSnapshot is the SIM as droam's SIM Card Model describes it. The
// ICCID is set later by applyICCID, once validated.
func droamSnapshot(sc *droamSimCard) *simtrailv1.SimSnapshot {
	s := &simtrailv1.SimSnapshot{
		Msisdn:  string(sc.MSISDN),
		Imei:    digitsOnly(string(sc.IMEI)),
		SimType: strings.ToLower(strings.TrimSpace(string(sc.SimCardType))),
		IsEsim:  sc.IsESim.ptr(),
	}
	if sc.Status != nil {
		s.StatusRaw = string(sc.Status.Title)
		s.Status = normStatus(s.StatusRaw)
	}
	if p := sc.Plan; p != nil && (p.UUID != "" || p.Type != "" || p.Name != "" || p.OperatorTitle != "") {
		s.Plan = &simtrailv1.Plan{
			Id: string(p.UUID), Type: string(p.Type), Name: string(p.Name), Operator: string(p.OperatorTitle),
		}
		if p.UUID != "" {
			// A new plan starts a new allowance period.
			s.Period = &simtrailv1.Period{Id: string(p.UUID)}
		}
	}
	if c := sc.Company; c != nil {
		s.CompanyId, s.CompanyName = string(c.UUID), string(c.Name)
	}
	if u := sc.EndUser; u != nil {
		s.EndUserId, s.EndUserName = string(u.UUID), string(u.Name)
	}
	s.Usage = droamUsage(sc.Details)
	return s
}

// droamUsage reads the KB counters in details. remaining_usage_kb is the
// assumed name of the prepaid counter (droam.md §9 #10); when both are
// present the allowance is their sum.
func droamUsage(details map[string]flexNumber) *simtrailv1.UsageSnapshot {
	used := qty(details["current_usage_kb"], kib)
	remaining := qty(details["remaining_usage_kb"], kib)
	if used == nil && remaining == nil {
		return nil
	}
	u := &simtrailv1.UsageSnapshot{UsedBytes: used, RemainingBytes: remaining}
	if used != nil && remaining != nil && *used+*remaining <= maxQuantity {
		allowed := *used + *remaining
		u.AllowedBytes = &allowed
	}
	return u
}
