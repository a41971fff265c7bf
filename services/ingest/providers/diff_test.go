package providers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// The differential tests hold each Parse* (scan.go) to its encoding/json
// reference (reference_test.go): the same error, echo and event for every
// input.

// scanParsers are the parsers under test, apart from the parsers map that
// TestDiffExistingCases wraps.
var scanParsers = map[simtrailv1.Provider]parseFunc{
	droam:    ParseDroam,
	roamify:  ParseRoamify,
	truphone: ParseTruphone,
}

var referenceParsers = map[simtrailv1.Provider]parseFunc{
	droam:    refParseDroam,
	roamify:  refParseRoamify,
	truphone: refParseTruphone,
}

// diffParse reports how the parser and its reference disagree on raw, or
// "" when they agree.
func diffParse(p simtrailv1.Provider, raw []byte) string {
	got, gotErr := scanParsers[p](raw, receivedAt)
	want, wantErr := referenceParsers[p](raw, receivedAt)
	switch {
	case (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error():
		return "error " + errString(gotErr) + ", reference " + errString(wantErr)
	case got.Echo != want.Echo:
		return "echo differs"
	case !proto.Equal(got.Event, want.Event):
		return "event\n" + prototext.Format(got.Event) + "reference\n" + prototext.Format(want.Event)
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// diffSeeds are bodies aimed at the encoding/json rules scan.go copies:
// key folding (ASCII, ſ and the Kelvin sign, escapes, invalid UTF-8),
// duplicate keys with and without merging, wrong-typed values, null,
// usage_list slice reuse, numbers, strings and nesting.
var diffSeeds = []string{
	``, ` `, `{}`, `[]`, `null`, `0`, `-0.5e+3`, `01`, `1.`, `.5`, `-`, `"\ud800"`, ` {"a":[1,{"b":null}]} `,
	`{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":tru}`, `{"a":nulll}`, `{"a":"\x01"}`, `{"a":"\u00zz"}`, `{"a":"\q"}`,
	"{\"a\":\"\xff\xfe\"}", "{\"\xff\":1}", `{"a":1}x`, `{"a":1} ` + "\t\r\n",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	`{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	// droam
	`{"TYPE":"echo","Echo_Data":"a:1"}`,
	`{"type":"echo","data":{"echo_data":"abc"},"echo_data":null}`,
	`{"type":"echo","echo_data":"a\u003a1"}`,
	`{"type":"echo","data":{"echo_data":"abc"},"data":5}`,
	`{"type":"rule.sim_card.status.changed","data":{"sim_card":{"iccid":"8937204016150000018","status":{"title":"Active"},"status":{"id":3}}},"created_at":{"unix_timestamp":1717250560},"created_at":{"x":1},"created_at":null,"created_at":[]}`,
	`{"type":"rule.sim_card.status.changed","data":{"sim_card":{"iccid":"8937204016150000018","status":{"title":"Active"}},"sim_card":{"iccid":"8937204016150000019"}}}`,
	`{"type":"rule.sim_card.status.changed","data":{"sim_card":{"iccid":"8937204016150000018","status":{"title":"A"},"status":null,"status":5}}}`,
	`{"type":"rule.sim_card.current_usage.triggered","data":{"sim_card":{"iccid":8937204016150000018,"details":{"current_usage_kb":"12.5"},"details":{"remaining_usage_kb":1e3},"details":[]}}}`,
	`{"type":"rule.sim_card.current_usage.triggered","data":{"sim_card":{"iccid":"8937204016150000018","details":{"current_usage_kb":1,"Current_Usage_KB":2,"current\u005fusage_kb":3},"details":null,"details":{"remaining_usage_kb":99999999999999999999}}}}`,
	"{\"\u017fype\":\"sim_card.first_usage\",\"dat\u0061\":{\"\u017fim_card\":{\"iccid\":\"8937204016150000018\",\"plan\":{\"uuid\":\"p\",\"\u212aind\":1},\"is_e_sim\":\"TRUE\",\"imei\":\"35-1\"}}}",
	`{"type":"rule.pool.usage.triggered","data":{"pool":{"uuid":"pool-1","current_usage_kb":"  42 "},"rule":{"uuid":7,"name":"\ud83d\ude00\ud83d"}}}`,
	`{"type":"rule.sim_card.imei.changed","data":{"sim_card":{"iccid":"8937204016150000018","imei":{"a":1},"company":{"uuid":"c","name":"C"},"company":{"name":"D"},"end_user":true}}}`,
	// roamify
	`{"event_category":"esim","event_type":"esim_usage","event_id":1.5e2,"data":{"iccid":"8937204016150000018","usage_data":{"isUnlimited":1,"allowed_data":"1024","remaining_data":512},"usage_data":{"ISUNLIMITED":"false"},"usage_list":[{"date":"2025-01-01","data_used":1},{"date":"2025-01-02","data_used":2},{"date":"2025-01-03","data_used":3}],"usage_list":[{"location":"X"}],"usage_list":[null,{"location":"Y"},5]}}`,
	`{"event_category":"esim","event_type":"usage","data":{"iccid":"8937204016150000018","usage_list":[{"date":"2025-01-01","data_used":1}],"usage_list":[],"usage_list":[{"location":"Z"}],"usage_list":null,"usage_list":{}}}`,
	`{"event_category":"esim","event_type":"status","iccid":"8937204016150000018","status":"ACTIVATED","data":null,"timestamp":1717250560.5}`,
	`{"event_category":"esim","event_type":"status","iccid":null,"data":"x","status":"NEW"}`,
	`{"event_category":"refund","event_type":"rejected","data":{"refund_id":"r","status":"REJECTED","rejection_reason":"\u00e9\u0000"},"data":{"esim_id":"e"}}`,
	`{"Event_Category":"esim","EVENT_TYPE":"status","Data":{"ICCID":"8937204016150000018","Status":"Installed","start":"1e9","end":1e400}}`,
	// truphone
	`{"type":"USAGE_THRESHOLD","iccid":"8937204016150000018","threshold":"80","current_balance":-1,"expiration_date":"2030-01-01T00:00:00Z","subscription_id":12}`,
	`{"type":"DOWNLOAD_PROGRESS","iccid":"8937204016150000018","notification_point_description:":"x","Notification_Point_Description":"","eid":"E","eid":null}`,
	`{"type":"SUBSCRITPION_END","iccid":"8937204016150000018","id":{"a":1},"threshold":12345678901234567890}`,
}

// seedDiff adds every example file of every provider (any shape is a good
// seed for any parser) and diffSeeds.
func seedDiff(f *testing.F) {
	for dir := range providerDirs {
		for _, name := range exampleFiles(f, dir) {
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range diffSeeds {
		f.Add([]byte(s))
	}
}

func fuzzDiff(f *testing.F, p simtrailv1.Provider) {
	seedDiff(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if d := diffParse(p, raw); d != "" {
			t.Fatalf("%v %q: %s", p, raw, d)
		}
	})
}

func FuzzDiffDroam(f *testing.F)    { fuzzDiff(f, droam) }
func FuzzDiffRoamify(f *testing.F)  { fuzzDiff(f, roamify) }
func FuzzDiffTruphone(f *testing.F) { fuzzDiff(f, truphone) }

// TestDiffExistingCases reruns the example, hostile and not-JSON tests with
// every parse also checked against the reference, so each body those tests
// hold is a differential case too.
func TestDiffExistingCases(t *testing.T) {
	saved := make(map[simtrailv1.Provider]parseFunc, len(parsers))
	for p, parse := range parsers {
		saved[p] = parse
		parsers[p] = func(raw []byte, receivedAt time.Time) (Parsed, error) {
			if d := diffParse(p, raw); d != "" {
				t.Errorf("%v %.200q: %s", p, raw, d)
			}
			return parse(raw, receivedAt)
		}
	}
	t.Cleanup(func() {
		for p, parse := range saved {
			parsers[p] = parse
		}
	})
	t.Run("Examples", TestExamples)
	t.Run("NotJSON", TestNotJSON)
	t.Run("NonObjectJSON", TestNonObjectJSON)
	t.Run("DroamHostile", TestDroamHostile)
	t.Run("RoamifyHostile", TestRoamifyHostile)
	t.Run("TruphoneHostile", TestTruphoneHostile)
}
