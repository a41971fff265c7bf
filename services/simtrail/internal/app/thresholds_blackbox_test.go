package app_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
	"google.golang.org/protobuf/proto"
)

// allWebhooks lists every webhook example of every provider (fixtures and
// API responses excluded).
func allWebhooks(t *testing.T) []webhook {
	t.Helper()
	skip := map[string]bool{"auth-fixture.json": true, "echo.flat.json": true, "echo.enveloped.json": true,
		"ack-response.json": true, "signature-fixture.json": true, "error-response.json": true,
		"preferences.get-response.json": true, "register-request.body.json": true,
		"subscription.get-response.json": true, "token-response.ASSUMED.json": true}
	var out []webhook
	for _, p := range []string{"roamify", "droam", "truphone"} {
		files, err := filepath.Glob(filepath.Join("..", "..", "..", "ingest", "providers", "testdata", p, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !skip[filepath.Base(f)] {
				out = append(out, webhook{p, filepath.Base(f)})
			}
		}
	}
	return out
}

type level struct {
	Percent   int     `json:"percent"`
	Crossed   bool    `json:"crossed"`
	CrossedAt *string `json:"crossed_at"`
	Source    *string `json:"source"`
}

// TestDevThresholdsBlackBox posts every example sequence through the dev
// wiring; the SIM, fleet and pool answers match the providers' documented
// timelines, and every crossed level was announced on
// simtrail.alerts.threshold.> exactly once.
func TestDevThresholdsBlackBox(t *testing.T) {
	a, _ := startDev(t, t.TempDir())
	base := "http://" + a.Addr()
	var last uint64
	hooks := allWebhooks(t)
	for _, w := range hooks {
		code, pos := post(t, base, w)
		if code != 200 {
			t.Fatalf("%s/%s: %d", w.provider, w.file, code)
		}
		last = max(last, pos)
	}
	minPos := map[string]string{"X-Min-Position": strconv.FormatUint(last, 10)}

	levels := func(iccid string) (map[int]level, map[string]any) {
		code, body, _ := getJSON(t, base+"/v1/sims/"+iccid+"/thresholds", minPos)
		if code != 200 {
			t.Fatalf("%s thresholds: %d %v", iccid, code, body)
		}
		raw, _ := json.Marshal(body["levels"])
		var ls []level
		json.Unmarshal(raw, &ls)
		out := map[int]level{}
		for _, l := range ls {
			out[l.Percent] = l
		}
		return out, body
	}

	// Roamify: 771 of 3072 MB at 2025-08-10T18:40:05Z crosses 25 %, computed;
	// 1087 MB (35.4 %) at the end crosses nothing more.
	rl, rbody := levels("8910300000051234567")
	if l := rl[25]; !l.Crossed || l.CrossedAt == nil || *l.CrossedAt != "2025-08-10T18:40:05Z" || *l.Source != "computed" {
		t.Errorf("roamify 25%%: %+v", l)
	}
	if rl[50].Crossed {
		t.Error("roamify 50% crossed")
	}
	if rbody["allowed_bytes"].(float64) != 3072*1048576 || rbody["used_bytes"].(float64) != 1087*1048576 {
		t.Errorf("roamify allowance/usage: %v / %v", rbody["allowed_bytes"], rbody["used_bytes"])
	}
	// droam prepaid: 5038080 of 5242880 KB (96.1 %) at 2024-06-09T18:44:05Z.
	dl, _ := levels("8937204016150000018")
	for _, p := range []int{25, 50, 75, 80, 90} {
		if l := dl[p]; !l.Crossed || *l.CrossedAt != "2024-06-09T18:44:05Z" || *l.Source != "computed" {
			t.Errorf("droam %d%%: %+v", p, l)
		}
	}
	// Truphone reports 80 % itself.
	tl, _ := levels("8944474600001234567")
	if l := tl[80]; !l.Crossed || *l.Source != "provider" {
		t.Errorf("truphone 80%%: %+v", l)
	}

	// Fleet: most used first.
	code, fleet, _ := getJSON(t, base+"/v1/thresholds?min_percent=25", minPos)
	if code != 200 {
		t.Fatalf("fleet: %d", code)
	}
	var order []string
	for _, s := range fleet["sims"].([]any) {
		order = append(order, s.(map[string]any)["iccid"].(string))
	}
	if strings.Join(order, ",") != "8937204016150000018,8944474600001234567,8910300000051234567" {
		t.Errorf("fleet order %v", order)
	}
	if code, pool, _ := getJSON(t, base+"/v1/pools/34f1b2c8-6d9e-4a0b-8c7d-2e5f1a9b3c46", minPos); code != 200 || pool["used_bytes"].(float64) != 41943040*1024 {
		t.Errorf("pool: %d %v", code, pool)
	}
	if code, _, _ := getJSON(t, base+"/v1/pools/no-such-pool", nil); code != 404 {
		t.Errorf("unknown pool: %d", code)
	}

	// Every crossed level of every SIM was announced exactly once.
	crossed := 0
	for _, m := range []map[int]level{rl, dl, tl} {
		for _, l := range m {
			if l.Crossed {
				crossed++
			}
		}
	}
	// The subscription SIM states no allowance: usage without levels.
	sl, _ := levels("8937204016150000026")
	for _, l := range sl {
		if l.Crossed {
			crossed++
		}
	}
	nc, err := nats.Connect(a.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := map[string]int{}
	for {
		cons, err := js.OrderedConsumer(ctx, "SIMTRAIL", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"simtrail.alerts.threshold.>"}})
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		seen = map[string]int{}
		for m := range batch.Messages() {
			var al simtrailv1.ThresholdCrossed
			if err := proto.Unmarshal(m.Data(), &al); err != nil {
				t.Fatalf("decode alert: %v", err)
			}
			key := al.GetIccid() + al.GetPoolId() + "|" + al.GetPeriodId() + "|" + strconv.Itoa(int(al.GetLevelPercent()))
			seen[key]++
			if m.Headers().Get("Nats-Msg-Id") != al.GetId() {
				t.Errorf("alert msg id %q != %q", m.Headers().Get("Nats-Msg-Id"), al.GetId())
			}
		}
		// The publisher runs after commit: poll until it has caught up.
		if len(seen) >= crossed || ctx.Err() != nil {
			break
		}
	}
	if len(seen) != crossed {
		t.Errorf("%d distinct alerts published, %d levels crossed in the read model", len(seen), crossed)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("alert %s published %d times", k, n)
		}
	}
}
