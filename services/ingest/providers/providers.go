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
