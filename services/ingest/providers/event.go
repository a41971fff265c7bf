package providers

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// newEvent starts the event for one body: the deterministic id, the exact
// bytes and the receipt time, which also stands in as occurred-at until a
// provider time is found (setOccurred).
func newEvent(p simtrailv1.Provider, raw []byte, receivedAt time.Time) *simtrailv1.Event {
	return &simtrailv1.Event{
		Id:                  events.ID(p, raw),
		Provider:            p,
		ReceivedAt:          timestamppb.New(receivedAt.UTC()),
		OccurredAt:          timestamppb.New(receivedAt.UTC()),
		OccurredAtIsReceipt: true,
		// A copy, so a caller that reuses its read buffer cannot change a
		// stored event.
		RawBody: bytes.Clone(raw),
	}
}

// setOccurred sets occurred-at from a provider time when it parses; a
// missing or unusable time leaves the receipt time in place.
func setOccurred(ev *simtrailv1.Event, n flexNumber) {
	if t, ok := n.unixTime(); ok {
		ev.OccurredAt = timestamppb.New(t)
		ev.OccurredAtIsReceipt = false
	}
}

// setOther makes ev an "other" event with the reason.
func setOther(ev *simtrailv1.Event, reason string) {
	ev.Kind = simtrailv1.Kind_KIND_OTHER
	ev.Body = &simtrailv1.Event_Other{Other: &simtrailv1.OtherReceived{Reason: reason}}
}

// addReason appends a further reason to an "other" event.
func addReason(ev *simtrailv1.Event, reason string) {
	if o := ev.GetOther(); o != nil && o.Reason != "" {
		o.Reason += "; " + reason
		return
	}
	setOther(ev, reason)
}

// iccidRule says whether an event kind is about one SIM and so needs an
// ICCID to be useful to the read models.
type iccidRule int

const (
	iccidOptional iccidRule = iota
	iccidRequired
)

// applyICCID validates the body's ICCID and sets it on the event and its
// SIM snapshot. An invalid one turns the event into kind other with an
// "invalid iccid" reason and is never copied anywhere: it would become the
// subject key. A missing one turns a SIM event into other too, since
// nothing could be keyed on it.
func applyICCID(ev *simtrailv1.Event, raw string, rule iccidRule) {
	iccid, ok := normICCID(raw)
	switch {
	case ok:
		ev.Iccid = iccid
	case iccid == "":
		if rule == iccidRequired && ev.Kind != simtrailv1.Kind_KIND_OTHER {
			setOther(ev, "missing iccid")
		}
	default:
		addReason(ev, fmt.Sprintf("invalid iccid: %s", strconv.Quote(clip(iccid, 40))))
	}
	if ev.Sim != nil {
		ev.Sim.Iccid = ev.Iccid
		if proto.Size(ev.Sim) == 0 {
			ev.Sim = nil // the body said nothing about the SIM
		}
	}
}

// ts converts a parsed time, or returns nil for the zero time.
func ts(t time.Time, ok bool) *timestamppb.Timestamp {
	if !ok {
		return nil
	}
	return timestamppb.New(t)
}

// qty returns a pointer to the scaled quantity, or nil when it is unusable.
func qty(n flexNumber, unit int64) *int64 {
	v, ok := n.scaled(unit)
	if !ok {
		return nil
	}
	return &v
}

// rule converts a provider rule, or returns nil when none was sent.
func rule(id flexString, name, description text) *simtrailv1.Rule {
	if id == "" && name == "" && description == "" {
		return nil
	}
	return &simtrailv1.Rule{Id: string(id), Name: string(name), Description: string(description)}
}

// setAttr sets a lifecycle attribute when its value was sent.
func setAttr(attrs map[string]string, k, v string) {
	if v != "" {
		attrs[k] = v
	}
}
