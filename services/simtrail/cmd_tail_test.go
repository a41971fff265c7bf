package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestTailFilters(t *testing.T) {
	cases := []struct {
		subjects, kinds []string
		want            []string
		wantErr         bool
	}{
		{nil, nil, []string{"simtrail.events.>"}, false},
		{[]string{"simtrail.alerts.>"}, nil, []string{"simtrail.alerts.>"}, false},
		{nil, []string{"usage", "status"}, []string{"simtrail.events.usage.>", "simtrail.events.status.>"}, false},
		{nil, []string{"teleport"}, nil, true},
		{[]string{"simtrail.>"}, []string{"usage"}, nil, true},
	}
	for _, c := range cases {
		got, err := tailFilters(c.subjects, c.kinds)
		if (err != nil) != c.wantErr || !reflect.DeepEqual(got, c.want) {
			t.Errorf("tailFilters(%v, %v) = %v, %v; want %v (err %v)", c.subjects, c.kinds, got, err, c.want, c.wantErr)
		}
	}
}

func TestApplyStart(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	ago := now.Add(-2 * time.Hour)
	cases := []struct {
		in      string
		policy  jetstream.DeliverPolicy
		seq     uint64
		t       *time.Time
		wantErr bool
	}{
		{"all", jetstream.DeliverAllPolicy, 0, nil, false},
		{"", jetstream.DeliverAllPolicy, 0, nil, false},
		{"new", jetstream.DeliverNewPolicy, 0, nil, false},
		{"42", jetstream.DeliverByStartSequencePolicy, 42, nil, false},
		{"2026-11-03T00:00:00Z", jetstream.DeliverByStartTimePolicy, 0, &at, false},
		{"2h", jetstream.DeliverByStartTimePolicy, 0, &ago, false},
		{"0", 0, 0, nil, true},
		{"-2h", 0, 0, nil, true},
		{"yesterday", 0, 0, nil, true},
	}
	for _, c := range cases {
		var occ jetstream.OrderedConsumerConfig
		err := applyStart(&occ, c.in, now)
		if (err != nil) != c.wantErr {
			t.Errorf("%q: err %v", c.in, err)
			continue
		}
		if c.wantErr {
			continue
		}
		if occ.DeliverPolicy != c.policy || occ.OptStartSeq != c.seq || !reflect.DeepEqual(occ.OptStartTime, c.t) {
			t.Errorf("%q: policy %v seq %d time %v", c.in, occ.DeliverPolicy, occ.OptStartSeq, occ.OptStartTime)
		}
	}
}
