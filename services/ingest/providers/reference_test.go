package providers

// This file keeps the encoding/json decoding that scan.go replaced, as
// the reference the differential tests (diff_test.go) hold the new decoder
// to: the same envelopes and json.Unmarshal calls as before, with a ref
// prefix. It shares with the parsers what did not change: the field types
// (the UnmarshalJSON methods of flexNumber, flexString, text and flexBool
// decode fields for both), the model structs, which keep their json tags,
// and the building of the result from the decoded body (droamParsed,
// roamifyParsed, truphoneParsed).

import (
	"encoding/json"
	"errors"
	"time"
)

// refDecodeLenient unmarshals b, which the caller has already checked is valid
// JSON, into v. encoding/json skips a member whose JSON type does not fit its
// Go field, carries on with the rest and reports only the first such
// mismatch; we ignore that report on purpose, because one odd field (details
// sent as [] by PHP, a number where a string was documented) must not cost
// the whole event. The flex* types never fail, so no other error can occur.
func refDecodeLenient(b []byte, v any) {
	_ = json.Unmarshal(b, v)
}

// refDecodeBody checks that raw is JSON and, when it is an object, decodes it
// leniently into v in the same pass: json.Unmarshal validates the whole
// input before it stores anything and reports only a *json.SyntaxError for
// invalid input, so a separate json.Valid scan would be redundant. It
// reports whether raw is valid JSON and whether it is an object; v is only
// written for a valid object.
func refDecodeBody(raw []byte, v any) (valid, object bool) {
	if jsonKind(raw) != "an object" {
		return json.Valid(raw), false
	}
	var se *json.SyntaxError
	if errors.As(json.Unmarshal(raw, v), &se) {
		return false, false
	}
	return true, true
}

type refDroamEnvelope struct {
	Type      text            `json:"type"`
	Data      json.RawMessage `json:"data"`
	CreatedAt struct {
		UnixTimestamp flexNumber `json:"unix_timestamp"`
	} `json:"created_at"`
	EchoData json.RawMessage `json:"echo_data"` // flat echo shape
}

// refDroamData holds the models as raw JSON: encoding/json allocates a
// pointer field before it finds the value is not an object, so presence is
// decided on the raw value instead (refObject).
type refDroamData struct {
	EchoData json.RawMessage `json:"echo_data"`
	SimCard  json.RawMessage `json:"sim_card"`
	Rule     json.RawMessage `json:"rule"`
	Pool     json.RawMessage `json:"pool"`
}

// refObject decodes raw into a new T when it is a JSON object, else nil.
func refObject[T any](raw json.RawMessage) *T {
	if !isObject(raw) {
		return nil
	}
	v := new(T)
	refDecodeLenient(raw, v)
	return v
}

// refParseDroam is ParseDroam's decoding as it was; what it decodes goes
// to the shared droamParsed.
func refParseDroam(raw []byte, receivedAt time.Time) (Parsed, error) {
	var env refDroamEnvelope
	valid, isObj := refDecodeBody(raw, &env)
	b := droamBody{Type: env.Type, CreatedAt: env.CreatedAt.UnixTimestamp, EchoData: env.EchoData, Data: env.Data}
	if isObject(env.Data) {
		var data refDroamData
		refDecodeLenient(env.Data, &data)
		b.DataEchoData = data.EchoData
		b.SimCard = refObject[droamSimCard](data.SimCard)
		b.Rule = refObject[droamRule](data.Rule)
		b.Pool = refObject[droamPool](data.Pool)
	}
	return droamParsed(raw, receivedAt, valid, isObj, &b)
}

type refRoamifyEnvelope struct {
	EventCategory text            `json:"event_category"`
	EventType     text            `json:"event_type"`
	EventID       flexString      `json:"event_id"`
	Data          json.RawMessage `json:"data"`
	// ICCID at the top level marks the legacy flat shape (docs before
	// 2025-07-20), where the data fields sat beside event_type.
	ICCID json.RawMessage `json:"iccid"`
}

// refParseRoamify is ParseRoamify's decoding as it was; what it decodes
// goes to the shared roamifyParsed.
func refParseRoamify(raw []byte, receivedAt time.Time) (Parsed, error) {
	var env refRoamifyEnvelope
	valid, isObj := refDecodeBody(raw, &env)
	b := roamifyBody{EventCategory: env.EventCategory, EventType: env.EventType, EventID: env.EventID, Data: env.Data, ICCID: env.ICCID}
	switch {
	case isObject(env.Data):
		refDecodeLenient(env.Data, &b.data)
	case present(env.ICCID):
		refDecodeLenient(raw, &b.flat) // legacy flat shape
	}
	return roamifyParsed(raw, receivedAt, valid, isObj, &b)
}

// refParseTruphone is ParseTruphone's decoding as it was.
func refParseTruphone(raw []byte, receivedAt time.Time) (Parsed, error) {
	var b truphoneBody
	valid, isObj := refDecodeBody(raw, &b)
	return truphoneParsed(raw, receivedAt, valid, isObj, &b)
}
