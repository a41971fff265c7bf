package providers

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// maxText bounds every free-form string copied from a body into an event.
// Bodies are up to 1 MiB and the event also carries the raw bytes, so an
// unbounded copy could double a hostile message past the broker's payload
// limit; no legitimate provider value comes near this.
const maxText = 1024

// maxTypeLen bounds provider type names, which are short identifiers.
const maxTypeLen = 256

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// flexString is an identifier that should be a JSON string but may come as
// a number (PHP backends are loose about that). Any other JSON type leaves
// it empty. It never fails to decode.
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (s *flexString) UnmarshalJSON(b []byte) error {
	*s = "" // a later duplicate key, even null, replaces an earlier one
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
	case b[0] == '"':
		// Decoding through encoding/json resolves escapes and replaces
		// invalid UTF-8, so the value is safe for a protobuf string.
		if v, ok := unquote(b); ok {
			*s = flexString(clip(v, maxText))
		}
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*s = flexString(clip(string(b), maxText))
	}
	return nil
}

// text is a free-form JSON string, clipped to maxText. Non-strings leave it
// empty. It never fails to decode.
type text string

// UnmarshalJSON implements json.Unmarshaler.
func (s *text) UnmarshalJSON(b []byte) error {
	*s = ""
	if v, ok := unquote(b); ok {
		*s = text(clip(v, maxText))
	}
	return nil
}

// unquote decodes the JSON string b exactly as json.Unmarshal into a string
// would, reporting false where that fails. A string with no escapes, no
// control characters and valid UTF-8 decodes to its own bytes, so it is
// copied directly; anything else (escapes, invalid UTF-8, null, other types,
// surrounding space) goes through encoding/json.
func unquote(b []byte) (string, bool) {
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' {
		in := b[1 : n-1]
		simple, ascii := true, true
		for _, c := range in {
			if c == '\\' || c == '"' || c < 0x20 {
				simple = false
				break
			}
			if c >= utf8.RuneSelf {
				ascii = false
			}
		}
		if simple && (ascii || utf8.Valid(in)) {
			return string(in), true
		}
	} else if string(b) == "null" {
		return "", true
	}
	var v string
	if json.Unmarshal(b, &v) != nil {
		return "", false
	}
	return v, true
}

// flexBool accepts true/false, 1/0 and their string forms; anything else
// leaves it unset. It never fails to decode.
type flexBool struct {
	v, ok bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexBool) UnmarshalJSON(b []byte) error {
	*f = flexBool{}
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	switch strings.ToLower(s) {
	case "true", "1":
		*f = flexBool{v: true, ok: true}
	case "false", "0":
		*f = flexBool{v: false, ok: true}
	}
	return nil
}

// ptr returns a pointer to the value, or nil when it was not sent.
func (f flexBool) ptr() *bool {
	if !f.ok {
		return nil
	}
	v := f.v
	return &v
}

// digitsOnly keeps the ASCII digits of s (droam sends IMEIs with dashes).
func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// ICCIDs are 19–20 digits in practice; the E.118 limit is 22, and test
// SIMs are sometimes shorter, so accept 10–22 digits.
const (
	minICCIDLen = 10
	maxICCIDLen = 22
)

// normICCID returns the ICCID in s with surrounding spaces trimmed, and
// whether it is valid (10–22 ASCII digits). Nothing else is accepted: the
// ICCID becomes a subject token, and a body must never be able to address
// another SIM's subject with dots or wildcards.
func normICCID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) < minICCIDLen || len(s) > maxICCIDLen {
		return s, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return s, false
		}
	}
	return s, true
}
