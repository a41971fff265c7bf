package events

import (
	"testing"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// decodeSamples are encoded events of several shapes, raw body first,
// last, absent, empty.
func decodeSamples(t testing.TB) [][]byte {
	t.Helper()
	used := int64(5 << 20)
	evs := []*simtrailv1.Event{
		{Id: "a1", Iccid: "8910300000051234567", Kind: simtrailv1.Kind_KIND_USAGE, Provider: simtrailv1.Provider_PROVIDER_ROAMIFY,
			OccurredAt: timestamppb.Now(), RawBody: []byte(`{"event":"esim/usage"}`), ProviderType: "esim/usage",
			Sim: &simtrailv1.SimSnapshot{Iccid: "8910300000051234567", Usage: &simtrailv1.UsageSnapshot{UsedBytes: &used,
				Daily: []*simtrailv1.DailyUsage{{Date: "2025-03-01", Location: "FR", DataBytes: 7}}}}},
		{Id: "b2", Kind: simtrailv1.Kind_KIND_LIFECYCLE, Body: &simtrailv1.Event_Lifecycle{Lifecycle: &simtrailv1.LifecycleOccurred{
			Name: "first_usage", Attributes: map[string]string{"x": "y"}}}},
		{Id: "c3", RawBody: []byte{}},
		{Id: "d4", RawBody: make([]byte, 70000)},
	}
	var out [][]byte
	for _, ev := range evs {
		b, err := Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	// raw_body twice (the last wins in Decode) and before every other field
	two := protowire.AppendTag(nil, rawBodyFieldNumber, protowire.BytesType)
	two = protowire.AppendBytes(two, []byte("first"))
	out = append(out, append(append(two, out[0]...), out[1]...), append(two[:len(two):len(two)], out[1]...))
	return append(out, nil, []byte{0xff}, out[0][:len(out[0])/2])
}

// sameDecoding fails t unless DecodeWithoutRawBody(b) is Decode(b) with
// raw_body cleared, or both fail.
func sameDecoding(t *testing.T, b []byte) {
	want, werr := Decode(b)
	got, gerr := DecodeWithoutRawBody(b)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("Decode err %v, DecodeWithoutRawBody err %v for %x", werr, gerr, b)
	}
	if werr != nil {
		return
	}
	if len(got.GetRawBody()) != 0 && rawBodyOnce(b) {
		t.Fatalf("raw body kept: %q", got.GetRawBody())
	}
	want.RawBody, got.RawBody = nil, nil
	if !proto.Equal(want, got) {
		t.Fatalf("decoded differently:\n got  %v\n want %v", got, want)
	}
}

func rawBodyOnce(b []byte) bool { s, _ := rawBodyField(b); return s >= 0 }

func TestDecodeWithoutRawBody(t *testing.T) {
	for _, b := range decodeSamples(t) {
		sameDecoding(t, b)
	}
	b := decodeSamples(t)[0]
	ev, err := DecodeWithoutRawBody(b)
	if err != nil || ev.GetRawBody() != nil || ev.GetIccid() != "8910300000051234567" || len(ev.GetSim().GetUsage().GetDaily()) != 1 {
		t.Fatalf("decoded %v, err %v", ev, err)
	}
}

func FuzzDecodeWithoutRawBody(f *testing.F) {
	for _, b := range decodeSamples(f) {
		f.Add(b)
	}
	f.Fuzz(sameDecoding)
}
