package truphone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

const (
	testClientID     = "simtrail-test"
	testClientSecret = "s3cr3t-never-printed"
	testHook         = "https://hooks.example.com/webhooks/truphone/6f1c2e9a4b7d"
	iccidA           = "8944474600001234567"
	iccidB           = "8944474600001234568"
)

// tokenServer stands in for Keycloak: it checks the client-credentials form
// and hands out tok-1, tok-2, … with the given lifetime.
type tokenServer struct {
	*httptest.Server
	t         *testing.T
	expiresIn int
	fail      bool
	calls     atomic.Int32
}

func newTokenServer(t *testing.T, expiresIn int) *tokenServer {
	ts := &tokenServer{t: t, expiresIn: expiresIn}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.calls.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("token request: %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("token form: %v", err)
		}
		want := map[string]string{"grant_type": "client_credentials", "client_id": testClientID, "client_secret": testClientSecret}
		for k, v := range want {
			if got := r.PostForm.Get(k); got != v {
				t.Errorf("token form %s = %q, want %q", k, got, v)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if ts.fail {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"unauthorized_client","error_description":"Invalid client secret"}`)
			return
		}
		// Keycloak's shape (providers/examples/truphone/token-response.ASSUMED.json).
		fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":%d,"refresh_expires_in":1800,"refresh_token":"r","token_type":"Bearer","not-before-policy":0,"scope":"profile"}`, n, ts.expiresIn)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// seen is one request the fake Connect API received.
type seen struct {
	Method, Path, Auth, ContentType, CorrelationID, Body string
}

// apiServer stands in for the Connect API; handle decides each answer.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newAPIServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *apiServer {
	as := &apiServer{}
	as.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		as.mu.Lock()
		as.reqs = append(as.reqs, seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"),
			r.Header.Get("X-Correlation-ID"), string(b)})
		as.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(as.Close)
	return as
}

func (as *apiServer) requests() []seen {
	as.mu.Lock()
	defer as.mu.Unlock()
	return slices.Clone(as.reqs)
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func newTestClient(t *testing.T, tok *tokenServer, api *apiServer, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{APIBase: api.URL + "/connect-api", TokenURL: tok.URL + "/auth/realms/tru-staff/protocol/openid-connect/token",
		ClientID: testClientID, ClientSecret: testClientSecret, Rate: 1e6}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRegisterTokenReusedAndHeaders(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, status(http.StatusNoContent))
	c := newTestClient(t, tok, api, nil)

	ops := Ops(ActionRegister, []string{iccidA, iccidB, "8944474600001234569"}, DefaultTypes, testHook)
	var results []Result
	sum := c.Run(context.Background(), ops, 4, func(r Result) { results = append(results, r) })
	if sum != (Summary{OK: 6}) || len(results) != 6 {
		t.Fatalf("summary %+v, %d results", sum, len(results))
	}
	if n := tok.calls.Load(); n != 1 {
		t.Errorf("token fetched %d times, want 1 (cached across requests)", n)
	}
	ids := map[string]bool{}
	paths := map[string]bool{}
	for _, r := range api.requests() {
		if r.Method != http.MethodPut || r.Auth != "Bearer tok-1" || r.ContentType != "application/json" {
			t.Errorf("request %+v", r)
		}
		if r.Body != `{"webhook_url":"`+testHook+`"}` {
			t.Errorf("body %s", r.Body)
		}
		if !uuidV4.MatchString(r.CorrelationID) || ids[r.CorrelationID] {
			t.Errorf("correlation id %q not a fresh UUID v4", r.CorrelationID)
		}
		ids[r.CorrelationID] = true
		paths[r.Path] = true
	}
	for _, op := range ops {
		if p := "/connect-api/v1/sim/" + op.ICCID + "/preferences/notifications/" + string(op.Type); !paths[p] {
			t.Errorf("no request to %s", p)
		}
	}
	for _, r := range results {
		if !ids[r.CorrelationID] || r.Status != http.StatusNoContent || r.Method != http.MethodPut {
			t.Errorf("result %+v", r)
		}
	}
}

func TestTokenRefetchedBeforeExpiry(t *testing.T) {
	// A token living 10 s is inside the 30 s early-expiry margin: every
	// request must get a new one instead of risking an expired token.
	tok := newTokenServer(t, 10)
	api := newAPIServer(t, status(http.StatusOK))
	c := newTestClient(t, tok, api, nil)
	for range 3 {
		if r := c.Unregister(context.Background(), iccidA, UsageThreshold); !r.OK() {
			t.Fatal(r.Err)
		}
	}
	if n := tok.calls.Load(); n != 3 {
		t.Errorf("token fetched %d times, want 3", n)
	}
	if got := api.requests()[2].Auth; got != "Bearer tok-3" {
		t.Errorf("third request used %q", got)
	}
}

func TestRegisterFallback(t *testing.T) {
	tests := []struct {
		name       string
		put, post  int
		wantOK     bool
		wantMethod []string // methods the API saw
		wantStatus int
	}{
		{"put accepted", 204, 0, true, []string{"PUT"}, 204},
		{"put 405 then post", 405, 201, true, []string{"PUT", "POST"}, 201},
		{"put 404 then post", 404, 200, true, []string{"PUT", "POST"}, 200},
		{"put 400 no fallback", 400, 0, false, []string{"PUT"}, 400},
		{"put 405 post fails", 405, 500, false, []string{"PUT", "POST"}, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newTokenServer(t, 300)
			api := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
				code := tt.put
				if r.Method == http.MethodPost {
					code = tt.post
				}
				w.WriteHeader(code)
				if code >= 400 {
					io.WriteString(w, `{"type":"X","messages":["m"]}`)
				}
			})
			c := newTestClient(t, tok, api, nil)
			r := c.Register(context.Background(), iccidA, SubscriptionEnd, testHook)
			reqs := api.requests()
			var methods []string
			for _, q := range reqs {
				methods = append(methods, q.Method)
				if q.Body != `{"webhook_url":"`+testHook+`"}` {
					t.Errorf("%s body %s", q.Method, q.Body)
				}
			}
			if r.OK() != tt.wantOK || !slices.Equal(methods, tt.wantMethod) || r.Status != tt.wantStatus {
				t.Fatalf("ok=%v methods=%v status=%d err=%v", r.OK(), methods, r.Status, r.Err)
			}
			last := reqs[len(reqs)-1]
			if r.Method != last.Method || r.CorrelationID != last.CorrelationID {
				t.Errorf("result reports %s/%s, last request %s/%s", r.Method, r.CorrelationID, last.Method, last.CorrelationID)
			}
			if len(reqs) == 2 && reqs[0].CorrelationID == reqs[1].CorrelationID {
				t.Error("fallback POST reused the PUT's correlation id")
			}
		})
	}
}

func TestRegisterRemembersPOSTOnly(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	c := newTestClient(t, tok, api, nil)
	for _, id := range []string{iccidA, iccidB} {
		if r := c.Register(context.Background(), id, UsageThreshold, testHook); !r.OK() {
			t.Fatal(r.Err)
		}
	}
	var methods []string
	for _, q := range api.requests() {
		methods = append(methods, q.Method)
	}
	if want := []string{"PUT", "POST", "POST"}; !slices.Equal(methods, want) {
		t.Errorf("methods %v, want %v", methods, want)
	}
}

func TestUnregister(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		wantOK bool
	}{
		{"deleted", http.StatusNoContent, true},
		{"ok", http.StatusOK, true},
		{"not registered", http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newTokenServer(t, 300)
			api := newAPIServer(t, status(tt.code))
			c := newTestClient(t, tok, api, nil)
			r := c.Unregister(context.Background(), iccidA, DownloadProgress)
			if r.OK() != tt.wantOK {
				t.Fatalf("ok=%v err=%v", r.OK(), r.Err)
			}
			reqs := api.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1 (no fallback for DELETE)", len(reqs))
			}
			q := reqs[0]
			if q.Method != http.MethodDelete || q.Path != "/connect-api/v1/sim/"+iccidA+"/preferences/notifications/DOWNLOAD_PROGRESS" ||
				q.Body != "" || q.Auth != "Bearer tok-1" || q.CorrelationID == "" {
				t.Errorf("request %+v", q)
			}
		})
	}
}

func TestPreferences(t *testing.T) {
	example, err := os.ReadFile("testdata/preferences.get-response.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		body string
		want []Notification
	}{
		{"docs example", string(example), []Notification{
			{SubscriptionEnd, "https://hooks.example.com/providers/truphone/6f1c2e9a4b7d"},
			{UsageThreshold, "https://hooks.example.com/providers/truphone/6f1c2e9a4b7d"},
		}},
		{"misspelt type", `{"notifications":[{"type":"SUBSCRITPION_END","webhook_url":"http://a/b"},{"type":"USAGE_THRESHOLD","webhook_url":"http://a/c"}]}`,
			[]Notification{{SubscriptionEnd, "http://a/b"}, {UsageThreshold, "http://a/c"}}},
		{"unknown type kept", `{"notifications":[{"type":"SIM_SWAP","webhook_url":"https://x/y"}],"other":1}`,
			[]Notification{{Type("SIM_SWAP"), "https://x/y"}}},
		{"none", `{"notifications":[]}`, nil},
		{"empty object", `{}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newTokenServer(t, 300)
			api := newAPIServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, tt.body) })
			c := newTestClient(t, tok, api, nil)
			r := c.Preferences(context.Background(), iccidA)
			if !r.OK() {
				t.Fatal(r.Err)
			}
			if !slices.Equal(r.Notifications, tt.want) {
				t.Errorf("got %+v, want %+v", r.Notifications, tt.want)
			}
			q := api.requests()[0]
			if q.Method != http.MethodGet || q.Path != "/connect-api/v1/sim/"+iccidA+"/preferences" || q.Auth != "Bearer tok-1" {
				t.Errorf("request %+v", q)
			}
		})
	}
}

func TestPreferencesBadJSON(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `<html>`) })
	r := newTestClient(t, tok, api, nil).Preferences(context.Background(), iccidA)
	if r.OK() || !strings.Contains(r.Err.Error(), r.CorrelationID) {
		t.Errorf("err %v", r.Err)
	}
}

func TestAPIErrorSurfaced(t *testing.T) {
	example, err := os.ReadFile("testdata/error-response.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		code     int
		body     string
		wantType string
		wantMsgs []string
		wantBody string
	}{
		{"docs example", 400, string(example), "INVALID_REQUEST_PARAMS",
			[]string{"type must be one of SUBSCRIPTION_END, USAGE_THRESHOLD, DOWNLOAD_PROGRESS"}, ""},
		{"access denied", 403, `{"type":"ACCESS_DENIED","messages":["a","b"]}`, "ACCESS_DENIED", []string{"a", "b"}, ""},
		{"not json", 502, "<html>Bad Gateway</html>", "", nil, "<html>Bad Gateway</html>"},
		{"empty", 500, "", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := newTokenServer(t, 300)
			api := newAPIServer(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.code)
				io.WriteString(w, tt.body)
			})
			c := newTestClient(t, tok, api, nil)
			r := c.Unregister(context.Background(), iccidA, UsageThreshold)
			var ae *APIError
			if !errors.As(r.Err, &ae) {
				t.Fatalf("err %v is not *APIError", r.Err)
			}
			sent := api.requests()[0].CorrelationID
			if ae.Status != tt.code || ae.Type != tt.wantType || !slices.Equal(ae.Messages, tt.wantMsgs) || ae.Body != tt.wantBody ||
				ae.CorrelationID != sent || r.CorrelationID != sent {
				t.Errorf("got %+v (sent correlation id %s)", ae, sent)
			}
			msg := r.Err.Error()
			for _, want := range append([]string{sent, fmt.Sprint(tt.code), tt.wantType}, tt.wantMsgs...) {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
		})
	}
}

func TestTokenFailure(t *testing.T) {
	tok := newTokenServer(t, 300)
	tok.fail = true
	api := newAPIServer(t, status(http.StatusNoContent))
	c := newTestClient(t, tok, api, nil)
	err := c.CheckAuth()
	if err == nil || !strings.Contains(err.Error(), "unauthorized_client") {
		t.Fatalf("CheckAuth: %v", err)
	}
	r := c.Register(context.Background(), iccidA, UsageThreshold, testHook)
	if r.OK() {
		t.Fatal("register succeeded without a token")
	}
	for _, e := range []error{err, r.Err} {
		if strings.Contains(e.Error(), testClientSecret) {
			t.Errorf("error reveals the client secret: %v", e)
		}
	}
	if n := len(api.requests()); n != 0 {
		t.Errorf("%d API requests without a token", n)
	}
}

// countingLimiter wraps a real limiter and counts waits.
type countingLimiter struct {
	Limiter
	n atomic.Int32
}

func (l *countingLimiter) Wait(ctx context.Context) error {
	l.n.Add(1)
	return l.Limiter.Wait(ctx)
}

func TestRateLimited(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	// A real limiter, fast enough to keep the test quick; several workers
	// share it.
	base, err := NewClient(Config{Rate: 2000, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	lim := &countingLimiter{Limiter: base.limiter}
	c := newTestClient(t, tok, api, func(cfg *Config) { cfg.Limiter = lim })
	ops := Ops(ActionRegister, []string{iccidA, iccidB, "8944474600001234569", "8944474600001234570", "8944474600001234571"}, DefaultTypes, testHook)
	sum := c.Run(context.Background(), ops, 8, nil)
	if sum != (Summary{OK: len(ops)}) {
		t.Fatalf("summary %+v", sum)
	}
	if got, want := int(lim.n.Load()), len(api.requests()); got != want {
		t.Errorf("limiter waited %d times for %d requests (every request, fallbacks included, must pass it)", got, want)
	}
}

func TestCancelledRunFailsFast(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, status(http.StatusNoContent))
	c := newTestClient(t, tok, api, func(cfg *Config) { cfg.Rate = 0.001 }) // one token per 1000 s
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum := c.Run(ctx, Ops(ActionUnregister, []string{iccidA, iccidB}, DefaultTypes, ""), 2, nil)
	if sum != (Summary{Failed: 4}) || len(api.requests()) != 0 {
		t.Errorf("summary %+v, %d requests", sum, len(api.requests()))
	}
}

func TestDryRunSendsNothing(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, status(http.StatusNoContent))
	c := newTestClient(t, tok, api, func(cfg *Config) {
		cfg.DryRun = true
		cfg.ClientID, cfg.ClientSecret = "", "" // not needed for a dry run
	})
	if err := c.CheckAuth(); err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for _, a := range []Action{ActionRegister, ActionUnregister, ActionList} {
		ops = append(ops, Ops(a, []string{iccidA}, DefaultTypes, testHook)...)
	}
	var results []Result
	sum := c.Run(context.Background(), ops, 1, func(r Result) { results = append(results, r) })
	if sum != (Summary{OK: 5}) {
		t.Fatalf("summary %+v", sum)
	}
	if tok.calls.Load() != 0 || len(api.requests()) != 0 {
		t.Fatalf("dry run sent %d token and %d API requests", tok.calls.Load(), len(api.requests()))
	}
	want := []struct{ method, path string }{
		{"PUT", "/v1/sim/" + iccidA + "/preferences/notifications/USAGE_THRESHOLD"},
		{"PUT", "/v1/sim/" + iccidA + "/preferences/notifications/SUBSCRIPTION_END"},
		{"DELETE", "/v1/sim/" + iccidA + "/preferences/notifications/USAGE_THRESHOLD"},
		{"DELETE", "/v1/sim/" + iccidA + "/preferences/notifications/SUBSCRIPTION_END"},
		{"GET", "/v1/sim/" + iccidA + "/preferences"},
	}
	for i, r := range results {
		if !r.DryRun || r.Method != want[i].method || r.URL != api.URL+"/connect-api"+want[i].path || r.CorrelationID == "" {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	var body registerBody
	if err := json.Unmarshal(results[0].Body, &body); err != nil || body.WebhookURL != testHook {
		t.Errorf("dry-run body %s", results[0].Body)
	}
}

func TestNewClientValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no credentials", Config{Rate: 10}},
		{"no secret", Config{Rate: 10, ClientID: "x"}},
		{"zero rate", Config{Rate: 0, ClientID: "x", ClientSecret: "y"}},
		{"negative rate", Config{Rate: -1, ClientID: "x", ClientSecret: "y"}},
		{"bad base", Config{Rate: 10, ClientID: "x", ClientSecret: "y", APIBase: "services.truphone.com"}},
		{"bad token url", Config{Rate: 10, ClientID: "x", ClientSecret: "y", TokenURL: "ftp://x/token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(tt.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
	if _, err := NewClient(Config{Rate: 10, ClientID: "x", ClientSecret: "y"}); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

func TestOpsRejectBadInput(t *testing.T) {
	tok := newTokenServer(t, 300)
	api := newAPIServer(t, status(http.StatusNoContent))
	c := newTestClient(t, tok, api, nil)
	for _, r := range []Result{
		c.Register(context.Background(), "89444746000012345/../x", UsageThreshold, testHook),
		c.Register(context.Background(), iccidA, Type("SUBSCRITPION_END"), testHook), // never sent misspelt
		c.Unregister(context.Background(), iccidA, Type("usage_threshold")),
		c.Preferences(context.Background(), "123"),
	} {
		if r.OK() {
			t.Errorf("accepted %+v", r)
		}
	}
	if n := len(api.requests()); n != 0 {
		t.Errorf("%d requests sent for invalid input", n)
	}
}
