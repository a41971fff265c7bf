package providers

import (
	"bytes"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// receivedAt is the receipt time every test passes in.
var receivedAt = time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)

type parseFunc func([]byte, time.Time) (Parsed, error)

var parsers = map[simtrailv1.Provider]parseFunc{
	simtrailv1.Provider_PROVIDER_DROAM:    ParseDroam,
	simtrailv1.Provider_PROVIDER_ROAMIFY:  ParseRoamify,
	simtrailv1.Provider_PROVIDER_TRUPHONE: ParseTruphone,
}

// checkInvariants asserts what must hold for any input: the error is nil
// or ErrNotJSON, and an event is self-consistent, safely keyed and
// encodable.
func checkInvariants(t testing.TB, p simtrailv1.Provider, raw []byte, got Parsed, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrNotJSON) {
			t.Fatalf("error %v does not wrap ErrNotJSON", err)
		}
		if got.Event != nil || got.Echo {
			t.Fatalf("error with a result: %+v", got)
		}
		return
	}
	if got.Echo {
		if p != simtrailv1.Provider_PROVIDER_DROAM || got.Event != nil {
			t.Fatalf("bad echo result %+v for %v", got, p)
		}
		return
	}
	ev := got.Event
	if ev == nil {
		t.Fatal("nil event without echo or error")
	}
	if ev.GetId() != events.ID(p, raw) {
		t.Errorf("id %s, want events.ID", ev.GetId())
	}
	if ev.GetProvider() != p {
		t.Errorf("provider %v, want %v", ev.GetProvider(), p)
	}
	if !bytes.Equal(ev.GetRawBody(), raw) {
		t.Error("raw body differs from input")
	}
	if !ev.GetReceivedAt().AsTime().Equal(receivedAt) {
		t.Errorf("received_at %v", ev.GetReceivedAt().AsTime())
	}
	if ev.GetOccurredAt() == nil {
		t.Error("occurred_at unset")
	} else if ev.GetOccurredAtIsReceipt() && !ev.GetOccurredAt().AsTime().Equal(receivedAt) {
		t.Error("occurred_at_is_receipt but occurred_at is not the receipt time")
	}
	if err := ev.GetOccurredAt().CheckValid(); err != nil {
		t.Errorf("occurred_at: %v", err)
	}
	checkBody(t, ev)
	subj := events.Subject(ev)
	info, err := events.ParseSubject(subj)
	if err != nil {
		t.Fatalf("subject %q: %v", subj, err)
	}
	if info.Key != events.NoKey && !events.ValidKey(info.Key) {
		t.Errorf("subject key %q", info.Key)
	}
	if iccid := ev.GetIccid(); iccid != "" {
		if _, ok := normICCID(iccid); !ok || iccid != info.Key && ev.GetKind() != simtrailv1.Kind_KIND_POOL {
			t.Errorf("iccid %q, subject key %q", iccid, info.Key)
		}
	}
	if ev.GetSim() != nil && ev.GetSim().GetIccid() != ev.GetIccid() {
		t.Errorf("sim iccid %q != event iccid %q", ev.GetSim().GetIccid(), ev.GetIccid())
	}
	checkUsage(t, ev.GetSim().GetUsage())
	checkStrings(t, ev.ProtoReflect())
	if _, err := events.Encode(ev); err != nil {
		t.Fatalf("encode: %v", err)
	}
}

// checkBody asserts exactly one body, matching the kind.
func checkBody(t testing.TB, ev *simtrailv1.Event) {
	t.Helper()
	var ok bool
	switch ev.GetKind() {
	case simtrailv1.Kind_KIND_USAGE:
		ok = ev.GetUsage() != nil
	case simtrailv1.Kind_KIND_THRESHOLD:
		ok = ev.GetThreshold() != nil
	case simtrailv1.Kind_KIND_STATUS:
		ok = ev.GetStatus() != nil
	case simtrailv1.Kind_KIND_IMEI:
		ok = ev.GetImei() != nil
	case simtrailv1.Kind_KIND_POOL:
		ok = ev.GetPool() != nil
	case simtrailv1.Kind_KIND_LIFECYCLE:
		ok = ev.GetLifecycle() != nil
	case simtrailv1.Kind_KIND_OTHER:
		ok = ev.GetOther() != nil && ev.GetOther().GetReason() != ""
	}
	if !ok {
		t.Errorf("kind %v with body %T", ev.GetKind(), ev.GetBody())
	}
}

func checkUsage(t testing.TB, u *simtrailv1.UsageSnapshot) {
	t.Helper()
	if u == nil {
		return
	}
	for _, v := range []*int64{u.UsedBytes, u.RemainingBytes, u.AllowedBytes, u.AllowedSms,
		u.RemainingSms, u.AllowedVoiceSeconds, u.RemainingVoiceSeconds} {
		if v != nil && (*v < 0 || *v > 1<<53) {
			t.Errorf("absurd quantity %d", *v)
		}
	}
	for _, d := range u.GetDaily() {
		if d.GetDataBytes() < 0 || d.GetDataBytes() > 1<<53 {
			t.Errorf("absurd daily bytes %d", d.GetDataBytes())
		}
		if _, err := time.Parse(time.DateOnly, d.GetDate()); err != nil {
			t.Errorf("daily date %q", d.GetDate())
		}
	}
}

// checkStrings walks every string in the message (proto.Marshal checks
// UTF-8 too; this names the field when it fails).
func checkStrings(t testing.TB, m protoreflect.Message) {
	t.Helper()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if !utf8.ValidString(k.String()) || !utf8.ValidString(mv.String()) {
					t.Errorf("%s: invalid UTF-8", fd.FullName())
				}
				return true
			})
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				checkStrings(t, v.List().Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind:
			checkStrings(t, v.Message())
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.ValidString(v.String()) {
				t.Errorf("%s: invalid UTF-8 %q", fd.FullName(), v.String())
			}
		}
		return true
	})
}

// mustParse runs the provider's parser and the invariants, failing on
// ErrNotJSON.
func mustParse(t testing.TB, p simtrailv1.Provider, raw []byte) Parsed {
	t.Helper()
	got, err := parsers[p](raw, receivedAt)
	checkInvariants(t, p, raw, got, err)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return got
}
