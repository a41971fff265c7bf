// Package providers turns authenticated webhook bodies from droam, Roamify
// and Truphone into canonical simtrail events, and checks the providers'
// request authentication.
//
// Everything here is pure: bytes and headers in, *simtrailv1.Event or an
// error out. The package imports neither the HTTP framework nor NATS, so it
// can be table-tested and fuzzed alone.
//
// Parsing is deliberately forgiving. SPEC §3 rule 2 says nothing
// authenticated may be lost, so a body that does not fit its provider's
// shape still becomes an event, of kind other with the reason. The only
// error a parser returns is ErrNotJSON, for bodies that are not JSON at all;
// the caller quarantines those.
package providers

import (
	"bytes"
	"encoding/json"
	"errors"

	simtrailv1 "github.com/simtrail/simtrail/proto/simtrail/v1"
)

// Parsed is what an adapter makes of one authenticated request body.
type Parsed struct {
	// Echo is set for a valid droam endpoint validation request: the caller
	// answers 200 with the raw body and stores nothing.
	Echo bool
	// Event is the canonical event; nil only when Echo is set.
	Event *simtrailv1.Event
}

// ErrNotJSON is returned, wrapped, when a body is not a JSON value at all.
// Valid JSON of the wrong shape (an array, a number, an object without the
// provider's keys) is not an error: it becomes an event of kind other.
var ErrNotJSON = errors.New("body is not JSON")

// jsonKind names the type of a valid JSON value by its first byte, for
// "other" reasons.
func jsonKind(v []byte) string {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// isObject reports whether the valid JSON value v is an object.
func isObject(v json.RawMessage) bool { return jsonKind(v) == "an object" }

// present reports whether a raw member was sent with a non-null value.
func present(v json.RawMessage) bool {
	k := jsonKind(v)
	return k != "nothing" && k != "null"
}

// decodeLenient unmarshals b, which the caller has already checked is valid
// JSON, into v. encoding/json skips a member whose JSON type does not fit its
// Go field, carries on with the rest and reports only the first such
// mismatch; we ignore that report on purpose, because one odd field (details
// sent as [] by PHP, a number where a string was documented) must not cost
// the whole event. The flex* types never fail, so no other error can occur.
func decodeLenient(b []byte, v any) {
	_ = json.Unmarshal(b, v)
}

// decodeBody checks that raw is JSON and, when it is an object, decodes it
// leniently into v in the same pass: json.Unmarshal validates the whole
// input before it stores anything and reports only a *json.SyntaxError for
// invalid input, so a separate json.Valid scan would be redundant. It
// reports whether raw is valid JSON and whether it is an object; v is only
// written for a valid object.
func decodeBody(raw []byte, v any) (valid, object bool) {
	if jsonKind(raw) != "an object" {
		return json.Valid(raw), false
	}
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(raw, v), &se) {
		return false, false
	}
	return true, true
}
