package providers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

type droamVector struct {
	Secret string `json:"api_secret"`
	TS     string `json:"timestamp"`
	Hash   string `json:"expected_hash"`
}

func TestDroamAuth(t *testing.T) {
	var fx struct {
		droamVector
		Doc droamVector `json:"doc_vector"`
	}
	readJSON(t, "droam/auth-fixture.json", &fx)
	// The doc vector as printed in droam.md §3, independent of the fixture.
	doc := droamVector{"96f3fbc76a921307f1c90d42a2203c9d", "1704067200",
		"68361c09cc50993ca6e0486e1f530c1d4e36a8aca9c8d20eb0d3aafbe47d2d5d"}
	if fx.Doc != doc {
		t.Fatalf("fixture doc vector %+v differs from droam.md %+v", fx.Doc, doc)
	}
	const window = 300 * time.Second
	for _, v := range []droamVector{doc, fx.droamVector} {
		t.Run(v.TS, func(t *testing.T) {
			sec, _ := strconv.ParseInt(v.TS, 10, 64)
			at := time.Unix(sec, 0)
			hash, ts := SignDroam(v.Secret, at)
			if hash != v.Hash || ts != v.TS {
				t.Fatalf("SignDroam = %s %s, want %s %s", hash, ts, v.Hash, v.TS)
			}
			cases := []struct {
				name    string
				secrets []string
				hash    string
				ts      string
				now     time.Time
				want    error
			}{
				{"exact", []string{v.Secret}, v.Hash, v.TS, at, nil},
				{"upper-case hex", []string{v.Secret}, strings.ToUpper(v.Hash), v.TS, at, nil},
				{"+299s", []string{v.Secret}, v.Hash, v.TS, at.Add(299 * time.Second), nil},
				{"-299s", []string{v.Secret}, v.Hash, v.TS, at.Add(-299 * time.Second), nil},
				{"+300s", []string{v.Secret}, v.Hash, v.TS, at.Add(300 * time.Second), nil},
				{"+301s", []string{v.Secret}, v.Hash, v.TS, at.Add(301 * time.Second), ErrStaleTimestamp},
				{"-301s", []string{v.Secret}, v.Hash, v.TS, at.Add(-301 * time.Second), ErrStaleTimestamp},
				{"rotation, second secret", []string{"old-secret", v.Secret}, v.Hash, v.TS, at, nil},
				{"empty secret skipped", []string{"", v.Secret}, v.Hash, v.TS, at, nil},
				{"wrong secret", []string{"nope"}, v.Hash, v.TS, at, ErrBadSignature},
				{"no secrets", nil, v.Hash, v.TS, at, ErrBadSignature},
				{"only empty secret", []string{""}, v.Hash, v.TS, at, ErrBadSignature},
				{"wrong hash", []string{v.Secret}, strings.Repeat("0", 64), v.TS, at, ErrBadSignature},
				{"truncated hash", []string{v.Secret}, v.Hash[:62], v.TS, at, ErrBadSignature},
				{"non-hex hash", []string{v.Secret}, strings.Repeat("zz", 32), v.TS, at, ErrBadSignature},
				{"missing hash", []string{v.Secret}, "", v.TS, at, ErrMissingSignature},
				{"missing timestamp", []string{v.Secret}, v.Hash, "", at, ErrMissingSignature},
				{"other timestamp", []string{v.Secret}, v.Hash, strconv.FormatInt(sec+1, 10), at, ErrBadSignature},
				{"timestamp with comma", []string{v.Secret}, v.Hash, v.TS + ",", at, ErrBadSignature},
				{"non-integer timestamp", []string{v.Secret}, v.Hash, "soon", at, ErrBadSignature},
			}
			for _, c := range cases {
				err := VerifyDroam(c.secrets, c.hash, c.ts, c.now, window)
				if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
					t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
				}
			}
		})
	}
}

// droamHash is an independent implementation of droam.md §3, for
// timestamps SignDroam cannot produce.
func droamHash(secret, ts string) string {
	sum := sha256.Sum256([]byte(secret + ":" + ts))
	return hex.EncodeToString(sum[:])
}

func TestDroamAuthExtremeTimestamps(t *testing.T) {
	now := time.Unix(1717240511, 0)
	for _, ts := range []string{"9223372036854775807", "-9223372036854775808", "0", "-1", "1099511627777"} {
		err := VerifyDroam([]string{"s"}, droamHash("s", ts), ts, now, 300*time.Second)
		if !errors.Is(err, ErrStaleTimestamp) {
			t.Errorf("ts %s: err = %v, want stale", ts, err)
		}
	}
	// The header string is hashed exactly as received, so "+1717240511"
	// verifies against a hash over "+1717240511" only.
	if err := VerifyDroam([]string{"s"}, droamHash("s", "+1717240511"), "+1717240511", now, time.Minute); err != nil {
		t.Errorf("explicit plus sign: %v", err)
	}
	if err := VerifyDroam([]string{"s"}, droamHash("s", "1717240511"), "+1717240511", now, time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("re-formatted timestamp: %v", err)
	}
}

func TestRoamifyAuth(t *testing.T) {
	var fx struct {
		Secret   string `json:"secret"`
		RawBody  string `json:"raw_body"`
		Expected string `json:"expected_signature"`
	}
	readJSON(t, "roamify/signature-fixture.json", &fx)
	if got := SignRoamify(fx.Secret, []byte(fx.RawBody)); got != fx.Expected {
		t.Fatalf("fixture: SignRoamify = %s, want %s", got, fx.Expected)
	}
	stored, err := os.ReadFile("testdata/roamify/esim.status.02-activated.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 311 {
		t.Fatalf("esim.status.02-activated.json is %d bytes, roamify.md says 311 as stored", len(stored))
	}
	// roamify.md §2: the file exactly as stored, final newline included.
	const storedSig = "1d53397eaa202a11efa65591fe949f6859d1c8397c62eff2e408dd8b824fb949"
	if got := SignRoamify(fx.Secret, stored); got != storedSig {
		t.Fatalf("stored file: SignRoamify = %s, want %s", got, storedSig)
	}
	tampered := []byte(strings.Replace(string(stored), "ACTIVATED", "EXPIRED", 1))
	cases := []struct {
		name    string
		secrets []string
		body    []byte
		header  string
		want    error
	}{
		{"fixture", []string{fx.Secret}, []byte(fx.RawBody), fx.Expected, nil},
		{"stored file", []string{fx.Secret}, stored, storedSig, nil},
		{"upper-case hex", []string{fx.Secret}, stored, strings.ToUpper(storedSig), nil},
		{"rotation", []string{"old", fx.Secret}, stored, storedSig, nil},
		{"pretty-printed body", []string{fx.Secret}, stored[:len(stored)-1], storedSig, ErrBadSignature},
		{"tampered body", []string{fx.Secret}, tampered, storedSig, ErrBadSignature},
		{"wrong secret", []string{"nope"}, stored, storedSig, ErrBadSignature},
		{"no secrets", nil, stored, storedSig, ErrBadSignature},
		{"non-hex header", []string{fx.Secret}, stored, "not-a-signature", ErrBadSignature},
		{"sha256= prefix", []string{fx.Secret}, stored, "sha256=" + storedSig, ErrBadSignature},
		{"short header", []string{fx.Secret}, stored, storedSig[:32], ErrBadSignature},
		{"missing header", []string{fx.Secret}, stored, "", ErrMissingSignature},
	}
	for _, c := range cases {
		err := VerifyRoamify(c.secrets, c.body, c.header)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTruphoneAuth(t *testing.T) {
	const (
		token = "dev-truphone-token"
		user  = "connect-hooks"
		pass  = "S3cure-Pa55"
		// truphone.md §5 worked example.
		basic = "Basic Y29ubmVjdC1ob29rczpTM2N1cmUtUGE1NQ=="
	)
	cases := []struct {
		name             string
		tokens           []string
		path             string
		bUser, bPass, hd string
		want             error
	}{
		{"token only", []string{token}, token, "", "", "", nil},
		{"token, header ignored without basic config", []string{token}, token, "", "", "Basic garbage", nil},
		{"rotation", []string{"old", token}, token, "", "", "", nil},
		{"wrong token", []string{token}, "dev-truphone-tokeN", "", "", "", ErrBadSignature},
		{"prefix of token", []string{token}, token[:5], "", "", "", ErrBadSignature},
		{"missing token", []string{token}, "", "", "", "", ErrMissingSignature},
		{"no tokens configured", nil, token, "", "", "", ErrBadSignature},
		{"empty token configured", []string{""}, "x", "", "", "", ErrBadSignature},
		{"basic ok", []string{token}, token, user, pass, basic, nil},
		{"basic lower-case scheme", []string{token}, token, user, pass, "basic Y29ubmVjdC1ob29rczpTM2N1cmUtUGE1NQ==", nil},
		{"basic missing", []string{token}, token, user, pass, "", ErrMissingSignature},
		{"basic wrong password", []string{token}, token, user, "other", basic, ErrBadSignature},
		{"basic wrong user", []string{token}, token, "someone", pass, basic, ErrBadSignature},
		{"bearer instead of basic", []string{token}, token, user, pass, "Bearer abc", ErrBadSignature},
		{"basic not base64", []string{token}, token, user, pass, "Basic ***", ErrBadSignature},
		{"basic without colon", []string{token}, token, user, pass, "Basic Y29ubmVjdC1ob29rcw==", ErrBadSignature},
		{"basic ok but token wrong", []string{token}, "nope", user, pass, basic, ErrBadSignature},
	}
	for _, c := range cases {
		err := VerifyTruphone(c.tokens, c.path, c.bUser, c.bPass, c.hd)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}
