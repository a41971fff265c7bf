// Package events holds what every simtrail component agrees on about the
// event log: the stream, the subject scheme, deterministic ids, CloudEvents
// headers and the protobuf encoding. It holds no business rules.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const (
	// StreamName is the one JetStream stream that holds the log.
	StreamName = "SIMTRAIL"
	// StreamSubjects is what the stream captures.
	StreamSubjects = "simtrail.>"
	// EventsFilter matches every canonical event; projectors read it.
	EventsFilter = "simtrail.events.>"
	// AlertsFilter matches every derived alert.
	AlertsFilter = "simtrail.alerts.>"
	// QuarantineFilter matches every rejected non-JSON body.
	QuarantineFilter = "simtrail.quarantine.>"
	// NoKey is the subject key token when an event has no ICCID or pool.
	NoKey = "_"
	// MaxKeyLen bounds the key token; ICCIDs are at most 22 characters.
	MaxKeyLen = 64
)

// Kinds lists every kind in subject-token form, in enum order.
var Kinds = []string{"usage", "threshold", "status", "imei", "pool", "lifecycle", "other"}

// Providers lists every provider in subject-token form, in enum order.
var Providers = []string{"droam", "roamify", "truphone"}

// KindName is the subject token of k ("other" for unknown values).
func KindName(k simtrailv1.Kind) string {
	if k >= simtrailv1.Kind_KIND_USAGE && int(k) <= len(Kinds) {
		return Kinds[k-1]
	}
	return "other"
}

// ParseKind is the inverse of KindName.
func ParseKind(s string) (simtrailv1.Kind, bool) {
	for i, n := range Kinds {
		if n == s {
			return simtrailv1.Kind(i + 1), true
		}
	}
	return simtrailv1.Kind_KIND_UNSPECIFIED, false
}

// ProviderName is the subject token of p ("unknown" for unset values).
func ProviderName(p simtrailv1.Provider) string {
	if p >= simtrailv1.Provider_PROVIDER_DROAM && int(p) <= len(Providers) {
		return Providers[p-1]
	}
	return "unknown"
}

// ParseProvider is the inverse of ProviderName.
func ParseProvider(s string) (simtrailv1.Provider, bool) {
	for i, n := range Providers {
		if n == s {
			return simtrailv1.Provider(i + 1), true
		}
	}
	return simtrailv1.Provider_PROVIDER_UNSPECIFIED, false
}

// ValidKey reports whether s can be used as a subject token: it must not
// contain the NATS separators or wildcards, so a hostile body can never
// address another SIM's subject.
func ValidKey(s string) bool {
	if s == "" || len(s) > MaxKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Key is the subject key of an event: the ICCID, the pool id for pool
// events, or NoKey.
func Key(ev *simtrailv1.Event) string {
	k := ev.GetIccid()
	if ev.GetKind() == simtrailv1.Kind_KIND_POOL && ev.GetPoolId() != "" {
		k = ev.GetPoolId()
	}
	if !ValidKey(k) {
		return NoKey
	}
	return k
}

// Subject is where ev is stored: simtrail.events.<kind>.<provider>.<key>.
func Subject(ev *simtrailv1.Event) string {
	return "simtrail.events." + KindName(ev.GetKind()) + "." + ProviderName(ev.GetProvider()) + "." + Key(ev)
}

// AlertSubject is where a derived alert about key goes.
func AlertSubject(kind string, p simtrailv1.Provider, key string) string {
	if !ValidKey(key) {
		key = NoKey
	}
	return "simtrail.alerts." + kind + "." + ProviderName(p) + "." + key
}

// QuarantineSubject is where a provider's non-JSON bodies go.
func QuarantineSubject(p simtrailv1.Provider) string {
	return "simtrail.quarantine." + ProviderName(p)
}

// ID is the deterministic event id: lower hex SHA-256 over the provider name,
// a colon and the raw body. A retry of the same bytes gets the same id, so
// JetStream's duplicate window and the projections' idempotency both catch it.
func ID(p simtrailv1.Provider, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(ProviderName(p)))
	h.Write([]byte{':'})
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))
}

// SubjectInfo is a parsed event subject.
type SubjectInfo struct {
	Kind     string
	Provider string
	Key      string
}

// ErrBadSubject is returned for subjects outside the event scheme.
var ErrBadSubject = errors.New("not an event subject")

// ParseSubject splits simtrail.events.<kind>.<provider>.<key>.
func ParseSubject(s string) (SubjectInfo, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 5 || parts[0] != "simtrail" || parts[1] != "events" {
		return SubjectInfo{}, fmt.Errorf("%w: %q", ErrBadSubject, s)
	}
	return SubjectInfo{Kind: parts[2], Provider: parts[3], Key: parts[4]}, nil
}

// Encode marshals ev for the wire.
func Encode(ev *simtrailv1.Event) ([]byte, error) {
	b, err := proto.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event: %w", err)
	}
	return b, nil
}

// AppendEncode appends ev's wire encoding to b, byte for byte what Encode
// returns, so a caller can reuse its buffer.
func AppendEncode(b []byte, ev *simtrailv1.Event) ([]byte, error) {
	b, err := proto.MarshalOptions{}.MarshalAppend(b, ev)
	if err != nil {
		return nil, fmt.Errorf("marshal event: %w", err)
	}
	return b, nil
}

// Decode unmarshals an event payload.
func Decode(b []byte) (*simtrailv1.Event, error) {
	ev := &simtrailv1.Event{}
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, fmt.Errorf("unmarshal event: %w", err)
	}
	return ev, nil
}

// DecodeWithoutRawBody decodes an event as Decode does but leaves
// raw_body empty: a projector never reads the request bytes, and copying
// them out of every message was a sixth of what a rebuild allocated. The
// encoding minus the raw_body field decodes, by protobuf's merge rule (a
// message's encoding is the concatenation of its fields'), to the event
// without it. A payload that is not a valid encoding fails as in Decode.
func DecodeWithoutRawBody(b []byte) (*simtrailv1.Event, error) {
	ev := &simtrailv1.Event{}
	start, end := rawBodyField(b)
	if start < 0 {
		return Decode(b)
	}
	if err := proto.Unmarshal(b[:start], ev); err != nil {
		return nil, fmt.Errorf("unmarshal event: %w", err)
	}
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b[end:], ev); err != nil {
		return nil, fmt.Errorf("unmarshal event: %w", err)
	}
	return ev, nil
}

// rawBodyFieldNumber is Event.raw_body's field number.
const rawBodyFieldNumber = 12

// rawBodyField is where the one raw_body field of b starts and ends at the
// top level, or -1, -1 when b holds none, holds several, or does not parse
// (Decode then takes the whole payload and reports what is wrong).
func rawBodyField(b []byte) (start, end int) {
	start, end = -1, -1
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return -1, -1
		}
		m := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if m < 0 {
			return -1, -1
		}
		if num == rawBodyFieldNumber {
			if start >= 0 || typ != protowire.BytesType {
				return -1, -1
			}
			start, end = off, off+n+m
		}
		off += n + m
	}
	return start, end
}

// CloudEvents binary-mode header names (NATS protocol binding).
const (
	HeaderMsgID        = "Nats-Msg-Id"
	HeaderContentType  = "Content-Type"
	HeaderSpecVersion  = "ce-specversion"
	HeaderID           = "ce-id"
	HeaderSource       = "ce-source"
	HeaderType         = "ce-type"
	HeaderSubject      = "ce-subject"
	HeaderTime         = "ce-time"
	HeaderProviderType = "ce-providertype"
	ContentType        = "application/protobuf"
)

// CEType is the ce-type of a canonical event of kind k.
func CEType(k simtrailv1.Kind) string {
	if i := int(k); i >= 0 && i < len(ceTypes) {
		return ceTypes[i]
	}
	return "io.simtrail.event." + KindName(k) + ".v1"
}

// CESource is the ce-source of events from provider p.
func CESource(p simtrailv1.Provider) string {
	if i := int(p); i >= 0 && i < len(ceSources) {
		return ceSources[i]
	}
	return "/simtrail/ingest/" + ProviderName(p)
}

// ceTypes and ceSources are CEType and CESource of every named kind and
// provider (and the unspecified one), built once: they are set on every
// stored event, and concatenating them there allocated twice per webhook.
var ceTypes, ceSources = func() (types, sources []string) {
	for k := range len(Kinds) + 1 {
		types = append(types, "io.simtrail.event."+KindName(simtrailv1.Kind(k))+".v1")
	}
	for p := range len(Providers) + 1 {
		sources = append(sources, "/simtrail/ingest/"+ProviderName(simtrailv1.Provider(p)))
	}
	return types, sources
}()

// Headers returns the CloudEvents binary-mode headers for ev as a plain map,
// so callers can copy them into nats.Header without this package importing
// nats.go.
func Headers(ev *simtrailv1.Event) map[string]string {
	h := make(map[string]string, numHeaders)
	eachHeader(ev, func(k, v string) { h[k] = v })
	return h
}

// SetHeaders sets the same headers as Headers directly into h, which has
// nats.Header's type (map[string][]string, one value per key, keys as
// written), without the intermediate map: the ingest path does this for
// every webhook. Existing values of those keys are replaced.
func SetHeaders(h map[string][]string, ev *simtrailv1.Event) {
	vals := make([]string, 0, numHeaders) // one backing array for all values
	eachHeader(ev, func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	})
}

// numHeaders is the most headers eachHeader yields.
const numHeaders = 9

// eachHeader yields every CloudEvents header of ev.
func eachHeader(ev *simtrailv1.Event, set func(k, v string)) {
	set(HeaderMsgID, ev.GetId())
	set(HeaderContentType, ContentType)
	set(HeaderSpecVersion, "1.0")
	set(HeaderID, ev.GetId())
	set(HeaderSource, CESource(ev.GetProvider()))
	set(HeaderType, CEType(ev.GetKind()))
	if k := Key(ev); k != NoKey {
		set(HeaderSubject, k)
	}
	if t := ev.GetOccurredAt(); t != nil {
		set(HeaderTime, t.AsTime().UTC().Format(time.RFC3339Nano))
	}
	if pt := ev.GetProviderType(); pt != "" && len(pt) <= 200 && isPrintableASCII(pt) {
		set(HeaderProviderType, pt)
	}
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
