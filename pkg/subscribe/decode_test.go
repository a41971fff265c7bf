package subscribe_test

import (
	"errors"
	"testing"

	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/subscribe"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
)

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	ev := &simtrailv1.Event{Id: "e1", Kind: simtrailv1.Kind_KIND_USAGE, Provider: simtrailv1.Provider_PROVIDER_ROAMIFY, Iccid: "8944"}
	q := &simtrailv1.Event{Id: "q1", Kind: simtrailv1.Kind_KIND_OTHER, Provider: simtrailv1.Provider_PROVIDER_DROAM, RawBody: []byte("not json")}
	al := &simtrailv1.ThresholdCrossed{Id: "a1", Provider: simtrailv1.Provider_PROVIDER_TRUPHONE, Iccid: "8944", LevelPercent: 80}
	tests := []struct {
		name                          string
		subject                       string
		data                          []byte
		wantErr                       error
		family                        subscribe.Family
		kind, provider, key, id       string
		wantEvent, wantAlert, hasData bool
	}{
		{name: "event", subject: events.Subject(ev), data: mustMarshal(t, ev), family: subscribe.FamilyEvent,
			kind: "usage", provider: "roamify", key: "8944", id: "e1", wantEvent: true},
		{name: "quarantine", subject: events.QuarantineSubject(simtrailv1.Provider_PROVIDER_DROAM), data: mustMarshal(t, q),
			family: subscribe.FamilyQuarantine, provider: "droam", id: "q1", wantEvent: true},
		{name: "alert", subject: "simtrail.alerts.threshold.truphone.8944", data: mustMarshal(t, al),
			family: subscribe.FamilyAlert, kind: "threshold", provider: "truphone", key: "8944", id: "a1", wantAlert: true},
		{name: "event garbage", subject: "simtrail.events.usage.droam.8944", data: []byte{0xff, 0xff, 0xff},
			wantErr: subscribe.ErrDecode, family: subscribe.FamilyEvent, kind: "usage", provider: "droam", key: "8944"},
		{name: "event without id", subject: "simtrail.events.usage.droam.8944", data: nil,
			wantErr: subscribe.ErrDecode, family: subscribe.FamilyEvent, kind: "usage", provider: "droam", key: "8944"},
		{name: "alert garbage", subject: "simtrail.alerts.threshold.droam.8944", data: []byte{0x0a, 0x05, 'x'},
			wantErr: subscribe.ErrDecode, family: subscribe.FamilyAlert, kind: "threshold", provider: "droam", key: "8944"},
		{name: "deadletter is unknown", subject: "simtrail.deadletter.alertwatcher", data: []byte("x"),
			wantErr: subscribe.ErrUnknownSubject, family: subscribe.FamilyUnknown},
		{name: "other alert kind is unknown", subject: "simtrail.alerts.forecast.droam.1", data: []byte("x"),
			wantErr: subscribe.ErrUnknownSubject, family: subscribe.FamilyUnknown},
		{name: "foreign subject", subject: "orders.created", wantErr: subscribe.ErrUnknownSubject, family: subscribe.FamilyUnknown},
		{name: "short event subject", subject: "simtrail.events.usage.droam", wantErr: subscribe.ErrUnknownSubject, family: subscribe.FamilyUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := subscribe.Decode(tt.subject, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if m.Family != tt.family || m.Kind != tt.kind || m.Provider != tt.provider || m.Key != tt.key || m.ID != tt.id {
				t.Errorf("got family=%q kind=%q provider=%q key=%q id=%q", m.Family, m.Kind, m.Provider, m.Key, m.ID)
			}
			if (m.Event != nil) != tt.wantEvent || (m.Alert != nil) != tt.wantAlert {
				t.Errorf("event set %v, alert set %v", m.Event != nil, m.Alert != nil)
			}
			if m.Subject != tt.subject || string(m.Data) != string(tt.data) {
				t.Errorf("subject/data not kept")
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad iccid")
	err := subscribe.Permanent(base)
	if !errors.Is(err, subscribe.ErrPermanent) || !errors.Is(err, base) {
		t.Fatalf("Permanent(%v) = %v loses an error in the chain", base, err)
	}
}
