package providers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
)

// roamifyBody is what ParseRoamify reads from a body in one pass
// (scan.go). Data and ICCID are raw, as json.RawMessage fields held them
// before: the last value sent under the key.
type roamifyBody struct {
	EventCategory text
	EventType     text
	EventID       flexString
	Data          []byte
	// ICCID at the top level marks the legacy flat shape (docs before
	// 2025-07-20), where the data fields sat beside event_type.
	ICCID []byte
	// data is decoded from the last data member when that is an object;
	// flat is the body itself read as data, for the legacy shape.
	data, flat roamifyData
}

func decodeRoamify(s *scanner, b *roamifyBody) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("event_category"):
			s.text(&b.EventCategory)
		case s.is("event_type"):
			s.text(&b.EventType)
		case s.is("event_id"):
			s.id(&b.EventID)
		case s.is("data"):
			b.data = roamifyData{}
			start := s.mark()
			if s.peek() == '{' {
				decodeRoamifyData(s, &b.data)
			} else {
				s.skip()
			}
			b.Data = s.since(start)
		default:
			iccid := s.is("iccid") // before the value moves the key on
			start := s.mark()
			if !roamifyDataField(s, &b.flat) {
				s.skip()
			}
			if iccid {
				b.ICCID = s.since(start)
			}
		}
	}
}

type roamifyData struct {
	Timestamp   flexNumber        `json:"timestamp"`
	ICCID       flexString        `json:"iccid"`
	EsimID      flexString        `json:"esim_id"`
	ReferenceID flexString        `json:"reference_id"`
	Start       flexNumber        `json:"start"`
	End         flexNumber        `json:"end"`
	Status      text              `json:"status"`
	PackageID   flexString        `json:"package_id"`
	PackageName text              `json:"package_name"`
	DataUnits   text              `json:"data_units"`
	VoiceUnits  text              `json:"voice_units"`
	SMSUnits    text              `json:"sms_units"`
	UsageData   *roamifyUsageData `json:"usage_data"`
	UsageList   []roamifyUsageRow `json:"usage_list"`
	// Refund fields.
	RefundID        flexString `json:"refund_id"`
	RejectionReason text       `json:"rejection_reason"`
}

func decodeRoamifyData(s *scanner, d *roamifyData) {
	for more := s.openObject(); more; more = s.nextMember() {
		if !roamifyDataField(s, d) {
			s.skip()
		}
	}
}

// roamifyDataField decodes the current member into d when its key names a
// field, reporting whether it did.
func roamifyDataField(s *scanner, d *roamifyData) bool {
	switch {
	case s.is("timestamp"):
		s.num(&d.Timestamp)
	case s.is("iccid"):
		s.id(&d.ICCID)
	case s.is("esim_id"):
		s.id(&d.EsimID)
	case s.is("reference_id"):
		s.id(&d.ReferenceID)
	case s.is("start"):
		s.num(&d.Start)
	case s.is("end"):
		s.num(&d.End)
	case s.is("status"):
		s.text(&d.Status)
	case s.is("package_id"):
		s.id(&d.PackageID)
	case s.is("package_name"):
		s.text(&d.PackageName)
	case s.is("data_units"):
		s.text(&d.DataUnits)
	case s.is("voice_units"):
		s.text(&d.VoiceUnits)
	case s.is("sms_units"):
		s.text(&d.SMSUnits)
	case s.is("usage_data"):
		pointer(s, &d.UsageData, decodeRoamifyUsageData)
	case s.is("usage_list"):
		decodeRoamifyUsageList(s, &d.UsageList)
	case s.is("refund_id"):
		s.id(&d.RefundID)
	case s.is("rejection_reason"):
		s.text(&d.RejectionReason)
	default:
		return false
	}
	return true
}

// decodeRoamifyUsageList decodes usage_list as encoding/json decodes into a
// slice, down to reuse: null clears it; an array overwrites the rows in
// place, merging objects into the rows already there (even rows past the
// length left by an earlier, longer usage_list under a duplicate key, up to
// the capacity, which grows exactly as reflect.Value.Grow grows it); an
// empty array leaves an empty slice; anything else is skipped.
func decodeRoamifyUsageList(s *scanner, rows *[]roamifyUsageRow) {
	switch s.peek() {
	case 'n':
		s.skip()
		*rows = nil
		return
	case '[':
	default:
		s.skip()
		return
	}
	l := *rows
	i := 0
	for more := s.openArray(); more; more = s.nextElement() {
		if i >= cap(l) {
			l = slices.Grow(l, 1)
		}
		if i >= len(l) {
			l = l[:i+1]
		}
		if s.peek() == '{' {
			decodeRoamifyUsageRow(s, &l[i])
		} else {
			s.skip() // null and wrong types leave the row as it is
		}
		i++
	}
	if i < len(l) {
		l = l[:i]
	}
	if i == 0 {
		l = nil
	}
	*rows = l
}

type roamifyUsageData struct {
	IsUnlimited    flexBool   `json:"isUnlimited"`
	AllowedData    flexNumber `json:"allowed_data"`
	RemainingData  flexNumber `json:"remaining_data"`
	AllowedSMS     flexNumber `json:"allowed_sms"`
	RemainingSMS   flexNumber `json:"remaining_sms"`
	AllowedVoice   flexNumber `json:"allowed_voice"`
	RemainingVoice flexNumber `json:"remaining_voice"`
}

func decodeRoamifyUsageData(s *scanner, u *roamifyUsageData) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("isUnlimited"):
			s.flag(&u.IsUnlimited)
		case s.is("allowed_data"):
			s.num(&u.AllowedData)
		case s.is("remaining_data"):
			s.num(&u.RemainingData)
		case s.is("allowed_sms"):
			s.num(&u.AllowedSMS)
		case s.is("remaining_sms"):
			s.num(&u.RemainingSMS)
		case s.is("allowed_voice"):
			s.num(&u.AllowedVoice)
		case s.is("remaining_voice"):
			s.num(&u.RemainingVoice)
		default:
			s.skip()
		}
	}
}

type roamifyUsageRow struct {
	Date     text       `json:"date"`
	DataUsed flexNumber `json:"data_used"`
	Location text       `json:"location"`
}

func decodeRoamifyUsageRow(s *scanner, r *roamifyUsageRow) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("date"):
			s.text(&r.Date)
		case s.is("data_used"):
			s.num(&r.DataUsed)
		case s.is("location"):
			s.text(&r.Location)
		default:
			s.skip()
		}
	}
}

// ParseRoamify converts one authenticated Roamify webhook body, in either
// envelope generation. It never panics; the only error is a wrapped
// ErrNotJSON.
func ParseRoamify(raw []byte, receivedAt time.Time) (Parsed, error) {
	var b roamifyBody
	valid, isObj := scanBody(raw, &b, decodeRoamify)
	return roamifyParsed(raw, receivedAt, valid, isObj, &b)
}

// roamifyParsed makes the result from a decoded body (reference_test.go
// feeds it from the old encoding/json decoding too).
func roamifyParsed(raw []byte, receivedAt time.Time, valid, isObj bool, b *roamifyBody) (Parsed, error) {
	if !valid {
		return Parsed{}, fmt.Errorf("roamify: %w", ErrNotJSON)
	}
	ev := newEvent(simtrailv1.Provider_PROVIDER_ROAMIFY, raw, receivedAt)
	if !isObj {
		setOther(ev, "body is "+jsonKind(raw)+", not an object")
		return Parsed{Event: ev}, nil
	}
	category := strings.TrimSpace(string(b.EventCategory))
	typ := strings.TrimSpace(string(b.EventType))
	if category == "esim" {
		typ = strings.TrimPrefix(typ, "esim_") // the overview's esim_usage / esim_status aliases
	}
	if category != "" || typ != "" {
		ev.ProviderType = clip(category+"/"+typ, maxTypeLen)
	}
	ev.ProviderEventId = string(b.EventID)

	var d roamifyData
	var shapeErr string
	switch {
	case isObject(b.Data):
		d = b.data
	case present(b.ICCID):
		d = b.flat // legacy flat shape
	case present(b.Data):
		shapeErr = "data is " + jsonKind(b.Data) + ", not an object"
	default:
		shapeErr = "missing data"
	}
	setOccurred(ev, d.Timestamp)
	need := iccidRequired

	switch {
	case category == "" || typ == "":
		setOther(ev, "missing event_category or event_type")
	case shapeErr != "":
		setOther(ev, shapeErr)
	case category == "esim" && typ == "usage":
		ev.Sim = roamifySnapshot(&d, true)
		ev.Kind = simtrailv1.Kind_KIND_USAGE
		ev.Body = &simtrailv1.Event_Usage{Usage: &simtrailv1.UsageReported{
			PackageId:   string(d.PackageID),
			PackageName: string(d.PackageName),
			DataUnits:   string(d.DataUnits),
			VoiceUnits:  string(d.VoiceUnits),
			SmsUnits:    string(d.SMSUnits),
		}}
	case category == "esim" && typ == "status":
		ev.Sim = roamifySnapshot(&d, false)
		if strings.TrimSpace(string(d.Status)) == "" {
			setOther(ev, "missing status")
			break
		}
		ev.Kind = simtrailv1.Kind_KIND_STATUS
		ev.Body = &simtrailv1.Event_Status{Status: &simtrailv1.StatusChanged{
			Status: ev.Sim.Status, StatusRaw: ev.Sim.StatusRaw,
		}}
	case category == "refund":
		// Roamify documents the refund iccid as possibly empty: the
		// refund is still a lifecycle fact, keyed "_" then.
		need = iccidOptional
		roamifyRefund(ev, typ, &d)
	case category == "partner" || category == "affiliate":
		setOther(ev, "not a SIM event")
	default:
		setOther(ev, "unknown type")
		if category == "esim" {
			ev.Sim = roamifySnapshot(&d, false)
		}
	}
	applyICCID(ev, string(d.ICCID), need)
	return Parsed{Event: ev}, nil
}

// roamifyRefund fills a refund/* lifecycle event.
func roamifyRefund(ev *simtrailv1.Event, typ string, d *roamifyData) {
	attrs := make(map[string]string, 3)
	setAttr(attrs, "refund_id", string(d.RefundID))
	setAttr(attrs, "status", string(d.Status))
	setAttr(attrs, "rejection_reason", string(d.RejectionReason))
	if d.EsimID != "" {
		ev.Sim = &simtrailv1.SimSnapshot{ProviderSimId: string(d.EsimID)}
	}
	ev.Kind = simtrailv1.Kind_KIND_LIFECYCLE
	ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{
		Name:       "refund_" + normStatus(typ),
		Attributes: attrs,
	}}
}

// roamifySnapshot is the eSIM as one esim/* event describes it; withUsage
// adds the usage counters and package of an esim/usage event.
func roamifySnapshot(d *roamifyData, withUsage bool) *simtrailv1.SimSnapshot {
	s := &simtrailv1.SimSnapshot{
		ProviderSimId: string(d.EsimID),
		ReferenceId:   string(d.ReferenceID),
		StatusRaw:     string(d.Status),
		Status:        roamifyStatus(string(d.Status)),
	}
	start, startOK := d.Start.unixTime()
	end, endOK := d.End.unixTime()
	p := &simtrailv1.Period{Start: ts(start, startOK), End: ts(end, endOK)}
	if withUsage {
		// A package bought again gets the same package_id; its start time
		// tells the two allowance periods apart.
		p.Id = string(d.PackageID)
		if p.Id != "" && startOK {
			p.Id += fmt.Sprintf("@%d", start.Unix())
		}
		p.Name = string(d.PackageName)
		s.Usage = roamifyUsage(d)
	}
	if p.Id != "" || p.Name != "" || p.Start != nil || p.End != nil {
		s.Period = p
	}
	return s
}

// roamifyUsage converts usage_data and usage_list into bytes, seconds and
// counts.
func roamifyUsage(d *roamifyData) *simtrailv1.UsageSnapshot {
	dataUnit, dataOK := roamifyDataUnit(string(d.DataUnits))
	voiceUnit, voiceOK := roamifyVoiceUnit(string(d.VoiceUnits))
	u := &simtrailv1.UsageSnapshot{}
	if ud := d.UsageData; ud != nil {
		u.Unlimited = ud.IsUnlimited.v
		if dataOK {
			allowed := qty(ud.AllowedData, dataUnit)
			remaining := qty(ud.RemainingData, dataUnit)
			if u.Unlimited {
				// Unlimited plans report placeholder allowances (often 0);
				// keep them only when they say something.
				allowed, remaining = positive(allowed), positive(remaining)
			}
			u.AllowedBytes, u.RemainingBytes = allowed, remaining
			if allowed != nil && remaining != nil {
				used := max(*allowed-*remaining, 0) // a top-up can leave remaining above allowed
				u.UsedBytes = &used
			}
		}
		u.AllowedSms = qty(ud.AllowedSMS, 1)
		u.RemainingSms = qty(ud.RemainingSMS, 1)
		if voiceOK {
			u.AllowedVoiceSeconds = qty(ud.AllowedVoice, voiceUnit)
			u.RemainingVoiceSeconds = qty(ud.RemainingVoice, voiceUnit)
		}
	}
	if dataOK {
		for _, row := range d.UsageList {
			date := strings.TrimSpace(string(row.Date))
			t, err := time.Parse(time.DateOnly, date)
			if err != nil || t.Format(time.DateOnly) != date {
				continue // one bad row must not lose the others
			}
			b, ok := row.DataUsed.scaled(dataUnit)
			if !ok {
				continue
			}
			u.Daily = append(u.Daily, &simtrailv1.DailyUsage{
				Date: date, Location: string(row.Location), DataBytes: b,
			})
		}
	}
	if proto.Size(u) == 0 {
		return nil // usage_data and usage_list said nothing usable
	}
	return u
}

func positive(v *int64) *int64 {
	if v == nil || *v <= 0 {
		return nil
	}
	return v
}

// roamifyDataUnit maps data_units to bytes per unit. The docs say
// "typically MB"; a unit we do not know yields no byte counts at all,
// because a wrong unit would be off by a factor of 1024.
func roamifyDataUnit(u string) (int64, bool) {
	switch strings.ToUpper(strings.TrimSpace(u)) {
	case "", "MB", "MIB":
		return mib, true
	case "GB", "GIB":
		return gib, true
	case "KB", "KIB":
		return kib, true
	case "B", "BYTES":
		return 1, true
	}
	return 0, false
}

// roamifyVoiceUnit maps voice_units to seconds per unit ("typically
// minutes").
func roamifyVoiceUnit(u string) (int64, bool) {
	switch strings.ToLower(strings.TrimSpace(u)) {
	case "", "minutes", "minute", "min", "mins":
		return minute, true
	case "seconds", "second", "sec", "secs", "s":
		return 1, true
	}
	return 0, false
}
