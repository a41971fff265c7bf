package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/events"
	"github.com/simtrail/simtrail/pkg/httpx"
	"github.com/simtrail/simtrail/pkg/natstest"
	"github.com/simtrail/simtrail/pkg/natsx"
	"github.com/simtrail/simtrail/services/ingest"
	"github.com/simtrail/simtrail/services/ingest/providers"
	"google.golang.org/protobuf/proto"
)

const (
	droamSecret   = "test-droam-secret"
	roamifySecret = "test-roamify-secret"
	truphoneToken = "test-truphone-token"
)

// fixedNow is the ingest clock in these tests, so a stored event can be
// compared with the parser's output for the same receipt time.
var fixedNow = time.Date(2025, 8, 11, 6, 0, 0, 0, time.UTC)

type harness struct {
	t    *testing.T
	ns   *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	srv  *httptest.Server
	now  func() time.Time
	sigT time.Time // time the droam signer uses
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ns := natstest.Run(t)
	ns.Stream(t)
	nc, err := natsx.Connect(natsx.ConnConfig{URLs: ns.URL(), Name: "ingest-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ns: ns, nc: nc, js: js, sigT: fixedNow}
	log := slog.New(slog.DiscardHandler)
	svc, err := ingest.New(ingest.Config{
		DroamSecrets: []string{droamSecret}, RoamifySecrets: []string{roamifySecret},
		TruphoneTokens: []string{truphoneToken}, PublishTimeout: 2 * time.Second,
		Now: func() time.Time { return fixedNow },
	}, nc, js, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(log)
	svc.Routes(e)
	h.srv = httptest.NewServer(e)
	t.Cleanup(h.srv.Close)
	return h
}

// post signs body as provider would and posts it.
func (h *harness) post(provider string, body []byte) *http.Response {
	h.t.Helper()
	url := h.srv.URL + "/webhooks/" + provider
	if provider == "truphone" {
		url += "/" + truphoneToken
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch provider {
	case "droam":
		hash, ts := providers.SignDroam(droamSecret, h.sigT)
		req.Header.Set("X-Hash", hash)
		req.Header.Set("X-Timestamp", ts)
	case "roamify":
		req.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, r *http.Response) []byte {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (h *harness) streamMsgs() uint64 {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), events.StreamName)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

func (h *harness) getMsg(seq uint64) *jetstream.RawStreamMsg {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), events.StreamName)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := st.GetMsg(context.Background(), seq)
	if err != nil {
		h.t.Fatalf("get msg %d: %v", seq, err)
	}
	return m
}

func example(t *testing.T, provider, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("providers", "testdata", provider, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExamplesStored posts every webhook example and checks what JetStream
// holds: subject, CloudEvents headers, and the decoded event equal to the
// parser's output.
func TestExamplesStored(t *testing.T) {
	h := newHarness(t)
	const (
		droamPrepaid = "8937204016150000018"
		droamSub     = "8937204016150000026"
		roamify      = "8910300000051234567"
		truphone     = "8944474600001234567"
	)
	cases := []struct {
		provider, file, subject string
	}{
		{"droam", "sim_card.assigned_to_end_user.json", "simtrail.events.lifecycle.droam." + droamPrepaid},
		{"droam", "sim_card.first_usage.json", "simtrail.events.lifecycle.droam." + droamPrepaid},
		{"droam", "rule.sim_card.status.changed.json", "simtrail.events.status.droam." + droamPrepaid},
		{"droam", "rule.sim_card.remaining_usage.triggered.json", "simtrail.events.threshold.droam." + droamPrepaid},
		{"droam", "rule.sim_card.imei.changed.json", "simtrail.events.imei.droam." + droamPrepaid},
		{"droam", "rule.sim_card.current_usage.triggered.json", "simtrail.events.threshold.droam." + droamSub},
		{"droam", "rule.pool.usage.triggered.json", "simtrail.events.pool.droam.34f1b2c8-6d9e-4a0b-8c7d-2e5f1a9b3c46"},
		{"droam", "rule.wallet.remaining_balance.triggered.ASSUMED.json", "simtrail.events.other.droam._"},
		{"droam", "rule.sim_card.date.triggered.json", "simtrail.events.lifecycle.droam." + droamPrepaid},
		{"roamify", "esim.status.01-installed.json", "simtrail.events.status.roamify." + roamify},
		{"roamify", "esim.status.02-activated.json", "simtrail.events.status.roamify." + roamify},
		{"roamify", "esim.status.legacy-flat.json", "simtrail.events.status.roamify." + roamify},
		{"roamify", "esim.usage.01.json", "simtrail.events.usage.roamify." + roamify},
		{"roamify", "esim.usage.02.json", "simtrail.events.usage.roamify." + roamify},
		{"roamify", "esim.usage.03-threshold25.json", "simtrail.events.usage.roamify." + roamify},
		{"roamify", "esim.usage.04.json", "simtrail.events.usage.roamify." + roamify},
		{"roamify", "esim.usage.05.json", "simtrail.events.usage.roamify." + roamify},
		{"roamify", "esim.usage.06.json", "simtrail.events.usage.roamify." + roamify},
		{"roamify", "partner.low_balance.json", "simtrail.events.other.roamify._"},
		{"roamify", "affiliate.order.json", "simtrail.events.other.roamify._"},
		{"roamify", "refund.rejected.json", "simtrail.events.lifecycle.roamify." + roamify},
		{"truphone", "DOWNLOAD_PROGRESS.json", "simtrail.events.lifecycle.truphone." + truphone},
		{"truphone", "USAGE_THRESHOLD.json", "simtrail.events.threshold.truphone." + truphone},
		{"truphone", "USAGE_THRESHOLD.legacy.json", "simtrail.events.threshold.truphone." + truphone},
		{"truphone", "SUBSCRIPTION_END.json", "simtrail.events.lifecycle.truphone." + truphone},
		{"truphone", "SUBSCRIPTION_END.legacy.json", "simtrail.events.lifecycle.truphone." + truphone},
	}
	parse := map[string]func([]byte, time.Time) (providers.Parsed, error){
		"droam": providers.ParseDroam, "roamify": providers.ParseRoamify, "truphone": providers.ParseTruphone,
	}
	for _, c := range cases {
		t.Run(c.provider+"/"+c.file, func(t *testing.T) {
			body := example(t, c.provider, c.file)
			resp := h.post(c.provider, body)
			answer := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, answer)
			}
			pos, err := strconv.ParseUint(resp.Header.Get("X-Event-Position"), 10, 64)
			if err != nil || pos == 0 {
				t.Fatalf("X-Event-Position = %q", resp.Header.Get("X-Event-Position"))
			}
			want, err := parse[c.provider](body, fixedNow)
			if err != nil {
				t.Fatal(err)
			}
			if c.provider == "roamify" {
				if string(bytes.TrimSpace(answer)) != `{"code":200,"status":"success"}` {
					t.Errorf("roamify ack = %s", answer)
				}
			} else {
				wantBody := fmt.Sprintf(`{"status":"accepted","events":[{"id":%q,"position":%d}]}`, want.Event.GetId(), pos)
				if string(bytes.TrimSpace(answer)) != wantBody {
					t.Errorf("answer = %s, want %s", answer, wantBody)
				}
			}
			m := h.getMsg(pos)
			if m.Subject != c.subject {
				t.Errorf("subject = %s, want %s", m.Subject, c.subject)
			}
			got, err := events.Decode(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want.Event) {
				t.Errorf("stored event differs from parser output:\n got %v\nwant %v", got, want.Event)
			}
			if !bytes.Equal(got.GetRawBody(), body) {
				t.Error("raw body not kept byte for byte")
			}
			hd := m.Header
			checks := map[string]string{
				"Nats-Msg-Id":    got.GetId(),
				"ce-id":          got.GetId(),
				"ce-specversion": "1.0",
				"ce-source":      "/simtrail/ingest/" + c.provider,
				"ce-type":        events.CEType(got.GetKind()),
				"ce-time":        got.GetOccurredAt().AsTime().UTC().Format(time.RFC3339Nano),
				"Content-Type":   "application/protobuf",
			}
			if k := events.Key(got); k != events.NoKey {
				checks["ce-subject"] = k
			}
			for k, v := range checks {
				if hd.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, hd.Get(k), v)
				}
			}
			if got.GetId() != events.ID(got.GetProvider(), body) {
				t.Error("event id is not the deterministic hash of provider and body")
			}
		})
	}
	if n := h.streamMsgs(); n != uint64(len(cases)) {
		t.Errorf("stream holds %d messages, want %d", n, len(cases))
	}
}

func TestDroamEchoAnsweredNotStored(t *testing.T) {
	h := newHarness(t)
	for _, f := range []string{"echo.flat.json", "echo.enveloped.json"} {
		body := example(t, "droam", f)
		// Signed and unsigned: the validation probe may come without headers.
		for _, signed := range []bool{true, false} {
			var resp *http.Response
			if signed {
				resp = h.post("droam", body)
			} else {
				r, err := http.Post(h.srv.URL+"/webhooks/droam", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				resp = r
			}
			got := readAll(t, resp)
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Errorf("%s signed=%v: status %d body %q, want 200 and the request bytes", f, signed, resp.StatusCode, got)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
		}
	}
	if n := h.streamMsgs(); n != 0 {
		t.Errorf("echo stored %d messages", n)
	}
}

func TestDuplicatesStoreOnce(t *testing.T) {
	h := newHarness(t)
	bodies := map[string][]byte{
		"droam":    example(t, "droam", "rule.sim_card.status.changed.json"),
		"roamify":  example(t, "roamify", "esim.usage.01.json"),
		"truphone": example(t, "truphone", "USAGE_THRESHOLD.json"),
	}
	for p, body := range bodies {
		first := h.post(p, body)
		readAll(t, first)
		h.sigT = h.sigT.Add(90 * time.Second) // a retry is signed at a later time
		second := h.post(p, body)
		readAll(t, second)
		if first.StatusCode != 200 || second.StatusCode != 200 {
			t.Fatalf("%s: statuses %d, %d", p, first.StatusCode, second.StatusCode)
		}
		if a, b := first.Header.Get("X-Event-Position"), second.Header.Get("X-Event-Position"); a != b {
			t.Errorf("%s: duplicate answered position %s, first was %s", p, b, a)
		}
	}
	if n := h.streamMsgs(); n != 3 {
		t.Errorf("stream holds %d messages, want 3", n)
	}
}

func TestRejections(t *testing.T) {
	h := newHarness(t)
	body := example(t, "roamify", "esim.usage.01.json")
	dbody := example(t, "droam", "rule.sim_card.status.changed.json")
	do := func(req *http.Request) (int, map[string]map[string]string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]map[string]string
		raw := readAll(t, resp)
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("error body is not JSON: %q", raw)
		}
		return resp.StatusCode, e
	}
	newReq := func(path string, b []byte) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, bytes.NewReader(b))
		r.Header.Set("Content-Type", "application/json")
		return r
	}

	t.Run("roamify tampered body", func(t *testing.T) {
		r := newReq("/webhooks/roamify", append(bytes.Clone(body), ' '))
		r.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, body))
		if code, e := do(r); code != 401 || e["error"]["code"] != "unauthorized" {
			t.Errorf("got %d %v", code, e)
		}
	})
	t.Run("roamify no signature", func(t *testing.T) {
		if code, _ := do(newReq("/webhooks/roamify", body)); code != 401 {
			t.Errorf("got %d", code)
		}
	})
	t.Run("droam stale timestamp", func(t *testing.T) {
		r := newReq("/webhooks/droam", dbody)
		hash, ts := providers.SignDroam(droamSecret, fixedNow.Add(-301*time.Second))
		r.Header.Set("X-Hash", hash)
		r.Header.Set("X-Timestamp", ts)
		if code, _ := do(r); code != 401 {
			t.Errorf("got %d", code)
		}
	})
	t.Run("droam wrong secret", func(t *testing.T) {
		r := newReq("/webhooks/droam", dbody)
		hash, ts := providers.SignDroam("other", fixedNow)
		r.Header.Set("X-Hash", hash)
		r.Header.Set("X-Timestamp", ts)
		if code, _ := do(r); code != 401 {
			t.Errorf("got %d", code)
		}
	})
	t.Run("droam unsigned non-echo", func(t *testing.T) {
		if code, _ := do(newReq("/webhooks/droam", dbody)); code != 401 {
			t.Errorf("got %d", code)
		}
	})
	t.Run("truphone wrong token", func(t *testing.T) {
		if code, _ := do(newReq("/webhooks/truphone/nope", example(t, "truphone", "USAGE_THRESHOLD.json"))); code != 401 {
			t.Errorf("got %d", code)
		}
	})
	t.Run("2 MiB body", func(t *testing.T) {
		big := bytes.Repeat([]byte("a"), 2<<20)
		r := newReq("/webhooks/roamify", big)
		r.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, big))
		if code, e := do(r); code != 413 || e["error"]["code"] != "body_too_large" {
			t.Errorf("got %d %v", code, e)
		}
	})
	t.Run("2 MiB body without length", func(t *testing.T) {
		big := bytes.Repeat([]byte("a"), 2<<20)
		r := newReq("/webhooks/roamify", nil)
		r.Body = io.NopCloser(bytes.NewReader(big)) // chunked: no Content-Length
		r.ContentLength = -1
		r.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, big))
		if code, _ := do(r); code != 413 {
			t.Errorf("got %d", code)
		}
	})
	if n := h.streamMsgs(); n != 0 {
		t.Errorf("rejected requests stored %d messages", n)
	}

	t.Run("non-JSON is quarantined with 400", func(t *testing.T) {
		junk := []byte("<xml>not json</xml>")
		resp := h.post("roamify", junk)
		raw := readAll(t, resp)
		if resp.StatusCode != 400 || !bytes.Contains(raw, []byte(`"not_json"`)) {
			t.Fatalf("got %d %s", resp.StatusCode, raw)
		}
		m := h.getMsg(1)
		if m.Subject != "simtrail.quarantine.roamify" {
			t.Errorf("subject %s", m.Subject)
		}
		ev, err := events.Decode(m.Data)
		if err != nil || !bytes.Equal(ev.GetRawBody(), junk) {
			t.Errorf("quarantined event %v, %v", ev, err)
		}
	})
	t.Run("unknown authenticated type kept as other", func(t *testing.T) {
		b := []byte(`{"event_category":"esim","event_type":"teleported","data":{"iccid":"8910300000051234567","timestamp":1754817120}}`)
		resp := h.post("roamify", b)
		readAll(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		seq, _ := strconv.ParseUint(resp.Header.Get("X-Event-Position"), 10, 64)
		if m := h.getMsg(seq); m.Subject != "simtrail.events.other.roamify.8910300000051234567" {
			t.Errorf("subject %s", m.Subject)
		}
	})
}

func TestDisabledProviderIs404(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	nc, js := ns.Conn(t)
	log := slog.New(slog.DiscardHandler)
	svc, err := ingest.New(ingest.Config{RoamifySecrets: []string{"x"}}, nc, js, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEcho(log)
	svc.Routes(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	for _, p := range []string{"/webhooks/droam", "/webhooks/truphone/abc"} {
		resp, err := http.Post(srv.URL+p, "application/json", bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatal(err)
		}
		raw := readAll(t, resp)
		if resp.StatusCode != 404 || !bytes.Contains(raw, []byte("provider_disabled")) {
			t.Errorf("%s: %d %s", p, resp.StatusCode, raw)
		}
	}
}

// TestStoreDownAnswers503 stops the JetStream server under the ingest: every
// request must get 503 with Retry-After (never 2xx), and after the server is
// back the same requests succeed, with each event stored exactly once.
func TestStoreDownAnswers503(t *testing.T) {
	h := newHarness(t)
	files := []string{"esim.usage.01.json", "esim.usage.02.json", "esim.usage.03-threshold25.json"}
	first := h.post("roamify", example(t, "roamify", files[0]))
	readAll(t, first)
	if first.StatusCode != 200 {
		t.Fatalf("status %d", first.StatusCode)
	}

	h.ns.Stop()
	for _, f := range files[1:] {
		resp := h.post("roamify", example(t, "roamify", f))
		raw := readAll(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s with store down: %d (Retry-After %q) %s", f, resp.StatusCode, resp.Header.Get("Retry-After"), raw)
		}
	}

	h.ns.Start()
	deadline := time.Now().Add(20 * time.Second)
	for _, f := range files {
		for {
			resp := h.post("roamify", example(t, "roamify", f))
			readAll(t, resp)
			if resp.StatusCode == 200 {
				break
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("%s after restart: status %d", f, resp.StatusCode)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still 503 after the store came back", f)
			}
			time.Sleep(50 * time.Millisecond) // polling interval while NATS reconnects
		}
	}
	if n := h.streamMsgs(); n != uint64(len(files)) {
		t.Errorf("stream holds %d messages, want %d (none lost, none doubled)", n, len(files))
	}
}

func TestIPAllowList(t *testing.T) {
	ns := natstest.Run(t)
	ns.Stream(t)
	nc, js := ns.Conn(t)
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		allow string
		want  int
	}{{"127.0.0.0/8", 200}, {"10.0.0.0/8", 403}} {
		svc, err := ingest.New(ingest.Config{
			RoamifySecrets: []string{roamifySecret},
			AllowedIPs:     map[string][]netip.Prefix{"roamify": {netip.MustParsePrefix(c.allow)}},
		}, nc, js, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := httpx.NewEcho(log)
		svc.Routes(e)
		srv := httptest.NewServer(e)
		body := example(t, "roamify", "esim.usage.02.json")
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/roamify", bytes.NewReader(body))
		req.Header.Set("X-Roamify-Signature", providers.SignRoamify(roamifySecret, body))
		// A spoofed forwarding header must not get a request past the list.
		req.Header.Set("X-Forwarded-For", "10.1.2.3")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		srv.Close()
		if resp.StatusCode != c.want {
			t.Errorf("allow %s: status %d, want %d", c.allow, resp.StatusCode, c.want)
		}
	}
}
