package subscribe

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
)

// Family says which part of the subject tree a message came from, and so
// which payload it carries.
type Family string

// The subject families of the SIMTRAIL stream (see docs/asyncapi.yaml).
const (
	// FamilyEvent: simtrail.events.<kind>.<provider>.<key>, payload Event.
	FamilyEvent Family = "events"
	// FamilyAlert: simtrail.alerts.threshold.<provider>.<key>, payload
	// ThresholdCrossed.
	FamilyAlert Family = "alerts"
	// FamilyQuarantine: simtrail.quarantine.<provider>, payload Event of kind
	// other holding the rejected raw body.
	FamilyQuarantine Family = "quarantine"
	// FamilyUnknown: any other subject under simtrail.> (for example a
	// service's dead-letter subject). Only Data is set; Run hands such
	// messages to the handler undecoded rather than treating them as
	// poison, so a subscriber on simtrail.> keeps working when new subject
	// families are added.
	FamilyUnknown Family = "unknown"
)

// Errors returned by Decode. Run treats ErrDecode as poison.
var (
	// ErrDecode wraps every payload that does not unmarshal into the
	// message its subject promises, or lacks the mandatory id.
	ErrDecode = errors.New("decode simtrail message")
	// ErrUnknownSubject is returned for subjects outside the known families.
	ErrUnknownSubject = errors.New("unknown simtrail subject")
)

// Message is one decoded message of the SIMTRAIL stream.
//
// Exactly one of Event and Alert is set for the known families; both are nil
// for FamilyUnknown.
type Message struct {
	// Subject the message was stored on.
	Subject string
	// Family, Kind, Provider and Key are the subject tokens. Kind is empty
	// for quarantine; Key is empty for quarantine and events.NoKey ("_")
	// when an event has no ICCID or pool.
	Family   Family
	Kind     string
	Provider string
	Key      string
	// ID is the deterministic id (event id or alert id); equal to the
	// Nats-Msg-Id and ce-id headers. Use it for idempotency.
	ID string
	// Event is the canonical event (events and quarantine families).
	Event *simtrailv1.Event
	// Alert is the derived threshold alert (alerts family).
	Alert *simtrailv1.ThresholdCrossed
	// Data is the raw payload as stored.
	Data []byte

	// The fields below are set by Subscriber.Run only.

	// Headers are the NATS headers (CloudEvents binary mode, Nats-Msg-Id).
	Headers nats.Header
	// Seq is the stream sequence: the position in the log. It increases
	// with every stored message, so it orders messages and is a replay
	// point (FromSequence(Seq+1) resumes after this message).
	Seq uint64
	// Delivered counts deliveries of this message to this consumer,
	// starting at 1; above 1 it is a redelivery.
	Delivered uint64
	// Stored is when JetStream stored the message (not when it happened:
	// that is Event.OccurredAt or Alert.CrossedAt).
	Stored time.Time
}

// Decode turns a stored payload into a Message according to its subject. It
// is for people running their own consumer (plain nats.go, the nats CLI's
// output, …); Subscriber.Run calls it for you.
//
// For a subject outside the known families it returns the message with
// Family FamilyUnknown and Data set, and an error wrapping
// ErrUnknownSubject. A payload that does not decode returns an error
// wrapping ErrDecode.
func Decode(subject string, data []byte) (Message, error) {
	m := Message{Subject: subject, Data: data, Family: FamilyUnknown}
	parts := strings.Split(subject, ".")
	if len(parts) < 3 || parts[0] != "simtrail" {
		return m, fmt.Errorf("%w: %q", ErrUnknownSubject, subject)
	}
	switch {
	case parts[1] == "events" && len(parts) == 5:
		m.Family, m.Kind, m.Provider, m.Key = FamilyEvent, parts[2], parts[3], parts[4]
		ev, err := decodeEvent(data)
		if err != nil {
			return m, fmt.Errorf("%w on %s: %w", ErrDecode, subject, err)
		}
		m.Event, m.ID = ev, ev.GetId()
	case parts[1] == "quarantine" && len(parts) == 3:
		m.Family, m.Provider = FamilyQuarantine, parts[2]
		ev, err := decodeEvent(data)
		if err != nil {
			return m, fmt.Errorf("%w on %s: %w", ErrDecode, subject, err)
		}
		m.Event, m.ID = ev, ev.GetId()
	case parts[1] == "alerts" && parts[2] == "threshold" && len(parts) == 5:
		m.Family, m.Kind, m.Provider, m.Key = FamilyAlert, parts[2], parts[3], parts[4]
		a, err := DecodeThresholdCrossed(data)
		if err != nil {
			return m, fmt.Errorf("%w on %s: %w", ErrDecode, subject, err)
		}
		m.Alert, m.ID = a, a.GetId()
	default:
		return m, fmt.Errorf("%w: %q", ErrUnknownSubject, subject)
	}
	return m, nil
}

func decodeEvent(data []byte) (*simtrailv1.Event, error) {
	ev, err := events.Decode(data)
	if err != nil {
		return nil, err
	}
	if ev.GetId() == "" {
		return nil, errors.New("event has no id")
	}
	return ev, nil
}

// DecodeThresholdCrossed unmarshals an alert payload; an alert without an id
// is refused, since every stored alert has one.
func DecodeThresholdCrossed(data []byte) (*simtrailv1.ThresholdCrossed, error) {
	a := &simtrailv1.ThresholdCrossed{}
	if err := proto.Unmarshal(data, a); err != nil {
		return nil, fmt.Errorf("unmarshal threshold crossed: %w", err)
	}
	if a.GetId() == "" {
		return nil, errors.New("threshold crossed has no id")
	}
	return a, nil
}
