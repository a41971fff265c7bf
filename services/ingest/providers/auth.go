package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Authentication errors. Callers answer all of them with 401 and store
// nothing; they are distinct so logs can tell a clock problem from a forgery.
var (
	// ErrMissingSignature: the request carries no credentials at all.
	ErrMissingSignature = errors.New("missing signature")
	// ErrBadSignature: credentials are present but do not verify against any
	// active secret (this includes malformed values).
	ErrBadSignature = errors.New("bad signature")
	// ErrStaleTimestamp: a droam signature verifies, but its timestamp is
	// outside the allowed window, so it may be a replay.
	ErrStaleTimestamp = errors.New("stale timestamp")
)

// maxSaneUnix keeps the droam skew arithmetic far from int64 overflow; any
// timestamp beyond it is stale by definition.
const maxSaneUnix = 1 << 40

// SignDroam returns the droam X-Hash and X-Timestamp header values for ts:
// lower hex SHA-256 of secret + ":" + the UNIX seconds. droam hashes a
// timestamp, not the body (droam.md §3).
func SignDroam(secret string, ts time.Time) (hash, timestamp string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	return hex.EncodeToString(droamDigest(secret, timestamp)), timestamp
}

func droamDigest(secret, timestamp string) []byte {
	sum := sha256.Sum256([]byte(secret + ":" + timestamp))
	return sum[:]
}

// VerifyDroam checks droam's hash and timestamp headers against each active
// secret (several during rotation; empty ones are ignored). The hash is
// compared case-insensitively and in constant time; the timestamp is hashed
// exactly as received. A timestamp that is not a decimal integer cannot
// have produced a valid hash and yields ErrBadSignature. A valid hash whose
// timestamp is more than window away from now, in either direction, yields
// ErrStaleTimestamp.
func VerifyDroam(secrets []string, hash, timestamp string, now time.Time, window time.Duration) error {
	hash = strings.TrimSpace(hash)
	if hash == "" || timestamp == "" {
		return ErrMissingSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp is not UNIX seconds", ErrBadSignature)
	}
	got, err := hex.DecodeString(hash)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: hash is not hex SHA-256", ErrBadSignature)
	}
	match, configured := 0, false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		configured = true
		// No early exit: every secret costs the same, whichever matches.
		match |= subtle.ConstantTimeCompare(got, droamDigest(s, timestamp))
	}
	if !configured {
		return fmt.Errorf("%w: no secret configured", ErrBadSignature)
	}
	if match != 1 {
		return ErrBadSignature
	}
	n := now.Unix()
	if ts > maxSaneUnix || ts < -maxSaneUnix {
		return ErrStaleTimestamp
	}
	skew := n - ts
	if skew < 0 {
		skew = -skew
	}
	// Timestamps are whole seconds, so |skew| > window ⇔ skew > ⌊window⌋.
	if skew > int64(window/time.Second) {
		return ErrStaleTimestamp
	}
	return nil
}

// SignRoamify returns the X-Roamify-Signature value for body: lower hex
// HMAC-SHA256 keyed with secret over the raw body bytes.
func SignRoamify(secret string, body []byte) string {
	return hex.EncodeToString(roamifyMAC(secret, body))
}

func roamifyMAC(secret string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// VerifyRoamify checks an X-Roamify-Signature header against each active
// secret (empty ones are ignored), over the body exactly as received. Hex
// of either case is accepted; no "sha256=" prefix is (Roamify sends none).
func VerifyRoamify(secrets []string, body []byte, header string) error {
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrMissingSignature
	}
	got, err := hex.DecodeString(header)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: signature is not hex HMAC-SHA256", ErrBadSignature)
	}
	ok, configured := false, false
	for _, s := range secrets {
		if s == "" {
			continue
		}
		configured = true
		ok = hmac.Equal(got, roamifyMAC(s, body)) || ok // no early exit
	}
	if !configured {
		return fmt.Errorf("%w: no secret configured", ErrBadSignature)
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// VerifyTruphone checks a Truphone request, which carries no signature: the
// secret token in the webhook URL path must equal one of the active tokens
// (empty ones are ignored) and, when basicUser is configured, the
// Authorization header must carry matching HTTP Basic credentials too.
// Comparisons are constant-time over SHA-256 digests, so neither the
// content nor the length of a secret leaks through timing.
func VerifyTruphone(tokens []string, pathToken string, basicUser, basicPass string, authorizationHeader string) error {
	if pathToken == "" {
		return ErrMissingSignature
	}
	ok, configured := false, false
	for _, tok := range tokens {
		if tok == "" {
			continue
		}
		configured = true
		ok = secretEqual(pathToken, tok) || ok
	}
	if !configured {
		return fmt.Errorf("%w: no token configured", ErrBadSignature)
	}
	if !ok {
		return ErrBadSignature
	}
	if basicUser == "" {
		return nil
	}
	user, pass, err := parseBasic(authorizationHeader)
	if err != nil {
		return err
	}
	// Both halves are always compared.
	userOK := secretEqual(user, basicUser)
	passOK := secretEqual(pass, basicPass)
	if !userOK || !passOK {
		return fmt.Errorf("%w: basic credentials", ErrBadSignature)
	}
	return nil
}

// parseBasic splits an "Authorization: Basic base64(user:pass)" header.
func parseBasic(h string) (user, pass string, err error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", "", fmt.Errorf("%w: no basic credentials", ErrMissingSignature)
	}
	scheme, cred, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", fmt.Errorf("%w: not basic auth", ErrBadSignature)
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", fmt.Errorf("%w: basic credentials not base64", ErrBadSignature)
	}
	user, pass, found = strings.Cut(string(dec), ":")
	if !found {
		return "", "", fmt.Errorf("%w: basic credentials without ':'", ErrBadSignature)
	}
	return user, pass, nil
}

// secretEqual compares a and b in constant time, independent of their
// lengths.
func secretEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
