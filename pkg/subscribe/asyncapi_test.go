package subscribe_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/simtrail/simtrail/pkg/events"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// TestAsyncAPIDocument keeps docs/asyncapi.yaml in step with the code: every
// kind, provider, ce-type, protobuf message, field and enum value must be
// described, and every $ref must resolve.
func TestAsyncAPIDocument(t *testing.T) {
	raw, err := os.ReadFile("../../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse asyncapi.yaml: %v", err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v, want 3.0.0", doc["asyncapi"])
	}
	get := func(path ...string) any {
		var cur any = doc
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("%s: not a mapping at %q", strings.Join(path, "."), p)
			}
			cur = m[p]
		}
		return cur
	}
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}

	if got := strs(get("components", "parameters", "kind", "enum")); !slices.Equal(got, events.Kinds) {
		t.Errorf("kind parameter enum = %v, want %v", got, events.Kinds)
	}
	if got := strs(get("components", "parameters", "provider", "enum")); !slices.Equal(got, events.Providers) {
		t.Errorf("provider parameter enum = %v, want %v", got, events.Providers)
	}
	var wantTypes []string
	for i := range events.Kinds {
		wantTypes = append(wantTypes, events.CEType(simtrailv1.Kind(i+1)))
	}
	if got := strs(get("components", "schemas", "EventHeaders", "properties", "ce-type", "enum")); !slices.Equal(got, wantTypes) {
		t.Errorf("ce-type enum = %v, want %v", got, wantTypes)
	}
	for _, h := range []string{events.HeaderMsgID, events.HeaderContentType, events.HeaderSpecVersion, events.HeaderID,
		events.HeaderSource, events.HeaderType, events.HeaderSubject, events.HeaderTime, events.HeaderProviderType} {
		if get("components", "schemas", "EventHeaders", "properties", h) == nil {
			t.Errorf("header %s not described", h)
		}
	}

	addresses := map[string]bool{}
	for _, ch := range get("channels").(map[string]any) {
		addresses[ch.(map[string]any)["address"].(string)] = true
	}
	for _, a := range []string{"simtrail.events.{kind}.{provider}.{key}", "simtrail.alerts.threshold.{provider}.{key}", "simtrail.quarantine.{provider}"} {
		if !addresses[a] {
			t.Errorf("no channel with address %s", a)
		}
	}

	schemas := get("components", "schemas").(map[string]any)
	fd := simtrailv1.File_simtrail_v1_events_proto
	for i := 0; i < fd.Messages().Len(); i++ {
		checkMessage(t, schemas, fd.Messages().Get(i))
	}
	for i := 0; i < fd.Enums().Len(); i++ {
		e := fd.Enums().Get(i)
		s, ok := schemas[string(e.Name())].(map[string]any)
		if !ok {
			t.Errorf("enum %s has no schema", e.Name())
			continue
		}
		got := strs(s["enum"])
		for j := 0; j < e.Values().Len(); j++ {
			if v := string(e.Values().Get(j).Name()); !slices.Contains(got, v) {
				t.Errorf("enum %s: value %s missing", e.Name(), v)
			}
		}
	}

	// The .proto text too, in case events.pb.go was not regenerated.
	proto, err := os.ReadFile("../../proto/simtrail/v1/events.proto")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^(?:message|enum)\s+(\w+)`).FindAllStringSubmatch(string(proto), -1) {
		if schemas[m[1]] == nil {
			t.Errorf("events.proto declares %s, asyncapi.yaml does not describe it", m[1])
		}
	}

	// Every $ref resolves.
	for _, ref := range regexp.MustCompile(`\$ref: '#/([^']+)'`).FindAllStringSubmatch(string(raw), -1) {
		var cur any = doc
		for _, p := range strings.Split(ref[1], "/") {
			m, _ := cur.(map[string]any)
			cur = m[p]
		}
		if cur == nil {
			t.Errorf("$ref #/%s does not resolve", ref[1])
		}
	}
}

func checkMessage(t *testing.T, schemas map[string]any, md protoreflect.MessageDescriptor) {
	t.Helper()
	s, ok := schemas[string(md.Name())].(map[string]any)
	if !ok {
		t.Errorf("message %s has no schema", md.Name())
		return
	}
	props, _ := s["properties"].(map[string]any)
	for i := 0; i < md.Fields().Len(); i++ {
		f := md.Fields().Get(i)
		p, ok := props[string(f.Name())].(map[string]any)
		if !ok {
			t.Errorf("%s.%s is not described", md.Name(), f.Name())
			continue
		}
		if n, _ := p["x-protobuf-field"].(int); n != int(f.Number()) {
			t.Errorf("%s.%s: x-protobuf-field %v, want %d", md.Name(), f.Name(), p["x-protobuf-field"], f.Number())
		}
	}
	if len(props) != md.Fields().Len() {
		t.Errorf("%s: %d properties described, the message has %d fields", md.Name(), len(props), md.Fields().Len())
	}
}
