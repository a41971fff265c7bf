package providers

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxQuantity bounds every count we store (bytes, seconds, SMS): above 2^53
// a float64 no longer holds every integer, and no SIM allowance is anywhere
// near 8 PiB, so a larger value is garbage and is dropped rather than let
// near int64 overflow.
const maxQuantity = 1 << 53

// Unit multipliers (SPEC §3.6: provider KB and MB are binary).
const (
	kib    = 1024
	mib    = 1024 * 1024
	gib    = 1024 * 1024 * 1024
	minute = 60
)

// Unix seconds accepted as a provider time: after the epoch (droam and
// Roamify use 0/null for "not set") and before year 10000, so the instant
// formats as RFC 3339.
const maxUnixSeconds = 253402300799 // 9999-12-31T23:59:59Z

// flexNumber is a JSON number that PHP-backed providers may also send as a
// string: 123, "123", 12.5, "12.50" and null are all accepted. It keeps the
// decimal text, validated against the JSON number grammar, so integers stay
// exact. Anything else (an object, "NaN", "0x10", "") leaves it unset. It
// never fails to decode.
type flexNumber struct {
	text string
}

// UnmarshalJSON implements json.Unmarshaler.
func (n *flexNumber) UnmarshalJSON(b []byte) error {
	*n = flexNumber{} // a later duplicate key, even null, replaces an earlier one
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	var s string
	if b[0] == '"' {
		v, ok := unquote(b)
		if !ok {
			return nil
		}
		s = strings.TrimSpace(v)
	} else {
		s = string(b)
	}
	if isJSONNumber(s) {
		n.text = s
	}
	return nil
}

// String returns the number's decimal text as sent, or "".
func (n flexNumber) String() string { return n.text }

// isInteger reports whether the text has no fraction or exponent.
func (n flexNumber) isInteger() bool {
	return n.text != "" && !strings.ContainsAny(n.text, ".eE")
}

// float returns the value when it is finite.
func (n flexNumber) float() (float64, bool) {
	if n.text == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(n.text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// scaled converts the number, given in units of size unit, to a whole count
// of base units (bytes, seconds, SMS), rounding to the nearest. Absent,
// negative, non-finite and absurd (> 2^53 base units) values report false.
func (n flexNumber) scaled(unit int64) (int64, bool) {
	if n.isInteger() {
		v, err := strconv.ParseInt(n.text, 10, 64)
		if err != nil || v < 0 || v > maxQuantity/unit {
			return 0, false
		}
		return v * unit, true
	}
	f, ok := n.float()
	if !ok || f < 0 {
		return 0, false
	}
	p := math.Round(f * float64(unit))
	if p > maxQuantity {
		return 0, false
	}
	return int64(p), true
}

// unixTime reads the number as UNIX seconds (fractions allowed) and reports
// false outside (0, year 9999].
func (n flexNumber) unixTime() (time.Time, bool) {
	if n.isInteger() {
		v, err := strconv.ParseInt(n.text, 10, 64)
		if err != nil || v <= 0 || v > maxUnixSeconds {
			return time.Time{}, false
		}
		return time.Unix(v, 0).UTC(), true
	}
	f, ok := n.float()
	if !ok || f <= 0 || f > maxUnixSeconds {
		return time.Time{}, false
	}
	sec := math.Floor(f)
	nsec := int64(math.Round((f - sec) * 1e9))
	if nsec >= 1e9 {
		sec++
		nsec -= 1e9
	}
	if sec > maxUnixSeconds {
		return time.Time{}, false
	}
	return time.Unix(int64(sec), nsec).UTC(), true
}

// isJSONNumber reports whether s matches the JSON number grammar:
// -?digits(.digits)?([eE][+-]?digits)?. Leading zeros are tolerated since
// a string value is not bound by the JSON rules anyway. strconv alone
// would also accept "NaN", "Inf", hex and underscores.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	if !digits() {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}
