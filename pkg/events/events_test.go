package events_test

import (
	"testing"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

func TestSubject(t *testing.T) {
	cases := []struct {
		name string
		ev   *simtrailv1.Event
		want string
	}{
		{"usage", &simtrailv1.Event{Kind: simtrailv1.Kind_KIND_USAGE, Provider: simtrailv1.Provider_PROVIDER_ROAMIFY, Iccid: "8910300000051234567"}, "simtrail.events.usage.roamify.8910300000051234567"},
		{"pool keyed by pool id", &simtrailv1.Event{Kind: simtrailv1.Kind_KIND_POOL, Provider: simtrailv1.Provider_PROVIDER_DROAM, PoolId: "34f1b2c8-6d9e"}, "simtrail.events.pool.droam.34f1b2c8-6d9e"},
		{"no key", &simtrailv1.Event{Kind: simtrailv1.Kind_KIND_OTHER, Provider: simtrailv1.Provider_PROVIDER_TRUPHONE}, "simtrail.events.other.truphone._"},
		{"wildcard in key", &simtrailv1.Event{Kind: simtrailv1.Kind_KIND_STATUS, Provider: simtrailv1.Provider_PROVIDER_DROAM, Iccid: "89.*>"}, "simtrail.events.status.droam._"},
		{"space in key", &simtrailv1.Event{Kind: simtrailv1.Kind_KIND_STATUS, Provider: simtrailv1.Provider_PROVIDER_DROAM, Iccid: "89 1"}, "simtrail.events.status.droam._"},
		{"unset kind and provider", &simtrailv1.Event{Iccid: "1"}, "simtrail.events.other.unknown.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := events.Subject(c.ev); got != c.want {
				t.Errorf("Subject = %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseSubject(t *testing.T) {
	got, err := events.ParseSubject("simtrail.events.usage.roamify.891")
	if err != nil || got != (events.SubjectInfo{Kind: "usage", Provider: "roamify", Key: "891"}) {
		t.Errorf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"", "simtrail.events.usage", "simtrail.alerts.threshold.droam.1", "x.events.a.b.c", "simtrail.events.a.b.c.d"} {
		if _, err := events.ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
}

func TestIDDeterministic(t *testing.T) {
	a := events.ID(simtrailv1.Provider_PROVIDER_DROAM, []byte(`{"a":1}`))
	if a != events.ID(simtrailv1.Provider_PROVIDER_DROAM, []byte(`{"a":1}`)) {
		t.Error("same bytes, different id")
	}
	if a == events.ID(simtrailv1.Provider_PROVIDER_ROAMIFY, []byte(`{"a":1}`)) {
		t.Error("provider is not part of the id")
	}
	if a == events.ID(simtrailv1.Provider_PROVIDER_DROAM, []byte(`{"a": 1}`)) {
		t.Error("different bytes, same id")
	}
	// printf '%s' 'droam:{}' | sha256sum
	const want = "37b245628ab20b85a690c44005d9f3a9814325122b207b8b93282940aff8a8a8"
	if got := events.ID(simtrailv1.Provider_PROVIDER_DROAM, []byte(`{}`)); got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
}

func TestKindProviderRoundTrip(t *testing.T) {
	for _, k := range events.Kinds {
		v, ok := events.ParseKind(k)
		if !ok || events.KindName(v) != k {
			t.Errorf("kind %s round trip: %v %v", k, v, ok)
		}
	}
	for _, p := range events.Providers {
		v, ok := events.ParseProvider(p)
		if !ok || events.ProviderName(v) != p {
			t.Errorf("provider %s round trip", p)
		}
	}
	if _, ok := events.ParseKind("nope"); ok {
		t.Error("unknown kind parsed")
	}
}

// TestCENamesPrecomputed: the precomputed ce-type and ce-source values are
// the documented forms, for every kind and provider and beyond.
func TestCENamesPrecomputed(t *testing.T) {
	for k := simtrailv1.Kind(-1); int(k) <= len(events.Kinds)+2; k++ {
		if got, want := events.CEType(k), "io.simtrail.event."+events.KindName(k)+".v1"; got != want {
			t.Errorf("events.CEType(%d) = %q, want %q", k, got, want)
		}
	}
	for p := simtrailv1.Provider(-1); int(p) <= len(events.Providers)+2; p++ {
		if got, want := events.CESource(p), "/simtrail/ingest/"+events.ProviderName(p); got != want {
			t.Errorf("events.CESource(%d) = %q, want %q", p, got, want)
		}
	}
}
