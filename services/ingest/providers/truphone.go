package providers

import (
	"fmt"
	"strings"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Truphone notification types (providers/truphone.md §4).
const (
	truphoneUsageThreshold   = "USAGE_THRESHOLD"
	truphoneSubscriptionEnd  = "SUBSCRIPTION_END"
	truphoneDownloadProgress = "DOWNLOAD_PROGRESS"
	// truphoneSubscriptionEndTypo is how the docs' enumerations spell it.
	truphoneSubscriptionEndTypo = "SUBSCRITPION_END"
)

// maxPercent bounds a reported threshold percentage; beyond it the value is
// garbage rather than an overrun.
const maxPercent = 1000

type truphoneBody struct {
	ID             flexString `json:"id"`
	Type           text       `json:"type"`
	ICCID          flexString `json:"iccid"`
	SubscriptionID flexString `json:"subscription_id"`
	Threshold      flexNumber `json:"threshold"`
	ExpirationDate text       `json:"expiration_date"`
	// CurrentBalance is the bytes left on the subscription.
	CurrentBalance       flexNumber `json:"current_balance"`
	EID                  flexString `json:"eid"`
	DownloadProgressStep text       `json:"download_progress_step"`
	NotificationPoint    text       `json:"notification_point_description"`
	// NotificationPointTypo is the key as the 1GLOBAL sample writes it.
	NotificationPointTypo text `json:"notification_point_description:"`
	NotificationStatus    text `json:"notification_status"`
}

func decodeTruphone(s *scanner, b *truphoneBody) {
	for more := s.openObject(); more; more = s.nextMember() {
		switch {
		case s.is("id"):
			s.id(&b.ID)
		case s.is("type"):
			s.text(&b.Type)
		case s.is("iccid"):
			s.id(&b.ICCID)
		case s.is("subscription_id"):
			s.id(&b.SubscriptionID)
		case s.is("threshold"):
			s.num(&b.Threshold)
		case s.is("expiration_date"):
			s.text(&b.ExpirationDate)
		case s.is("current_balance"):
			s.num(&b.CurrentBalance)
		case s.is("eid"):
			s.id(&b.EID)
		case s.is("download_progress_step"):
			s.text(&b.DownloadProgressStep)
		case s.is("notification_point_description"):
			s.text(&b.NotificationPoint)
		case s.is("notification_point_description:"):
			s.text(&b.NotificationPointTypo)
		case s.is("notification_status"):
			s.text(&b.NotificationStatus)
		default:
			s.skip()
		}
	}
}

// ParseTruphone converts one authenticated Truphone / 1GLOBAL Connect
// notification. Truphone sends no event time, so occurred-at is always the
// receipt time. It never panics; the only error is a wrapped ErrNotJSON.
func ParseTruphone(raw []byte, receivedAt time.Time) (Parsed, error) {
	var b truphoneBody
	valid, isObj := scanBody(raw, &b, decodeTruphone)
	return truphoneParsed(raw, receivedAt, valid, isObj, &b)
}

// truphoneParsed makes the result from a decoded body (reference_test.go
// feeds it from the old encoding/json decoding too).
func truphoneParsed(raw []byte, receivedAt time.Time, valid, isObj bool, b *truphoneBody) (Parsed, error) {
	if !valid {
		return Parsed{}, fmt.Errorf("truphone: %w", ErrNotJSON)
	}
	ev := newEvent(simtrailv1.Provider_PROVIDER_TRUPHONE, raw, receivedAt)
	if !isObj {
		setOther(ev, "body is "+jsonKind(raw)+", not an object")
		return Parsed{Event: ev}, nil
	}
	typ := strings.TrimSpace(string(b.Type))
	if typ == truphoneSubscriptionEndTypo {
		typ = truphoneSubscriptionEnd
	}
	ev.ProviderType = clip(typ, maxTypeLen)
	ev.ProviderEventId = string(b.ID)

	expires := truphoneTime(string(b.ExpirationDate))
	ev.Sim = &simtrailv1.SimSnapshot{Eid: string(b.EID)}
	if remaining := qty(b.CurrentBalance, 1); remaining != nil {
		ev.Sim.Usage = &simtrailv1.UsageSnapshot{RemainingBytes: remaining}
	}
	if b.SubscriptionID != "" || expires != nil {
		// The subscription is the allowance period (proto Period).
		ev.Sim.Period = &simtrailv1.Period{Id: string(b.SubscriptionID), End: expires}
	}

	switch typ {
	case "":
		setOther(ev, "missing type")
	case truphoneUsageThreshold:
		ev.Kind = simtrailv1.Kind_KIND_THRESHOLD
		ev.Body = &simtrailv1.Event_Threshold{Threshold: &simtrailv1.ThresholdReported{
			Percent:        truphonePercent(b.Threshold),
			Direction:      "used",
			SubscriptionId: string(b.SubscriptionID),
			ExpiresAt:      expires,
		}}
	case truphoneSubscriptionEnd:
		ev.Kind = simtrailv1.Kind_KIND_LIFECYCLE
		ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{
			Name:           "subscription_ended",
			SubscriptionId: string(b.SubscriptionID),
			ExpiresAt:      expires,
		}}
	case truphoneDownloadProgress:
		point := b.NotificationPoint
		if point == "" {
			point = b.NotificationPointTypo
		}
		attrs := make(map[string]string, 4)
		setAttr(attrs, "eid", string(b.EID))
		setAttr(attrs, "download_progress_step", string(b.DownloadProgressStep))
		setAttr(attrs, "notification_point_description", string(point))
		setAttr(attrs, "notification_status", string(b.NotificationStatus))
		ev.Kind = simtrailv1.Kind_KIND_LIFECYCLE
		ev.Body = &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{
			Name: "download_progress", Attributes: attrs,
		}}
	default:
		setOther(ev, "unknown type")
	}
	applyICCID(ev, string(b.ICCID), iccidRequired)
	return Parsed{Event: ev}, nil
}

// truphoneTime parses an RFC 3339 time, or returns nil.
func truphoneTime(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return nil
	}
	return timestamppb.New(t.UTC())
}

// truphonePercent returns the threshold percentage, rounded, when it is
// between 0 and maxPercent.
func truphonePercent(n flexNumber) *int32 {
	v, ok := n.scaled(1)
	if !ok || v > maxPercent {
		return nil
	}
	p := int32(v)
	return &p
}
