package timeline

import (
	"maps"
	"slices"
	"strconv"

	"github.com/simtrail/simtrail/pkg/jsonx"
)

// The documents stored in sim_event's plan, period and detail columns,
// appended by hand exactly as encoding/json marshals the doc structs
// (field order, null for nil, its string escaping, map keys sorted):
// reflection was a tenth of a rebuild's Apply. TestDocJSON holds each
// equal to json.Marshal.

// jsonDoc is a document type that can append its JSON.
type jsonDoc interface{ appendJSON([]byte) []byte }

// docString renders d.
func docString(d jsonDoc) string { return string(d.appendJSON(make([]byte, 0, 256))) }

func appendField(b []byte, first bool, name string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendOptInt(b []byte, v *int64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *v, 10)
}

func (d *ruleDoc) appendJSON(b []byte) []byte {
	if d == nil {
		return append(b, "null"...)
	}
	b = jsonx.AppendString(appendField(append(b, '{'), true, "id"), d.ID)
	b = jsonx.AppendString(appendField(b, false, "name"), d.Name)
	b = jsonx.AppendString(appendField(b, false, "description"), d.Description)
	return append(b, '}')
}

func (d planDoc) appendJSON(b []byte) []byte {
	b = jsonx.AppendOptString(appendField(append(b, '{'), true, "id"), d.ID)
	b = jsonx.AppendOptString(appendField(b, false, "type"), d.Type)
	b = jsonx.AppendOptString(appendField(b, false, "name"), d.Name)
	b = jsonx.AppendOptString(appendField(b, false, "operator"), d.Operator)
	return append(b, '}')
}

func (d periodDoc) appendJSON(b []byte) []byte {
	b = jsonx.AppendOptString(appendField(append(b, '{'), true, "id"), d.ID)
	b = jsonx.AppendOptString(appendField(b, false, "name"), d.Name)
	b = jsonx.AppendOptString(appendField(b, false, "start"), d.Start)
	b = jsonx.AppendOptString(appendField(b, false, "end"), d.End)
	return append(b, '}')
}

func (d statusDoc) appendJSON(b []byte) []byte {
	b = jsonx.AppendOptString(appendField(append(b, '{'), true, "status"), d.Status)
	b = jsonx.AppendOptString(appendField(b, false, "status_raw"), d.StatusRaw)
	b = d.Rule.appendJSON(appendField(b, false, "rule"))
	return append(b, '}')
}

func (d imeiDoc) appendJSON(b []byte) []byte {
	b = jsonx.AppendOptString(appendField(append(b, '{'), true, "imei"), d.IMEI)
	b = d.Rule.appendJSON(appendField(b, false, "rule"))
	return append(b, '}')
}

func (d thresholdDoc) appendJSON(b []byte) []byte {
	b = appendField(append(b, '{'), true, "percent")
	if d.Percent == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*d.Percent), 10)
	}
	b = d.Rule.appendJSON(appendField(b, false, "rule"))
	b = jsonx.AppendOptString(appendField(b, false, "direction"), d.Direction)
	b = appendOptInt(appendField(b, false, "used_bytes"), d.UsedBytes)
	b = appendOptInt(appendField(b, false, "remaining_bytes"), d.RemainingBytes)
	b = appendOptInt(appendField(b, false, "allowed_bytes"), d.AllowedBytes)
	b = jsonx.AppendOptString(appendField(b, false, "subscription_id"), d.SubscriptionID)
	b = jsonx.AppendOptString(appendField(b, false, "expires_at"), d.ExpiresAt)
	return append(b, '}')
}

func (d lifecycleDoc) appendJSON(b []byte) []byte {
	b = jsonx.AppendString(appendField(append(b, '{'), true, "name"), d.Name)
	b = appendField(b, false, "attributes")
	if d.Attributes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(d.Attributes)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(jsonx.AppendString(b, k), ':')
			b = jsonx.AppendString(b, d.Attributes[k])
		}
		b = append(b, '}')
	}
	b = d.Rule.appendJSON(appendField(b, false, "rule"))
	b = jsonx.AppendOptString(appendField(b, false, "subscription_id"), d.SubscriptionID)
	b = jsonx.AppendOptString(appendField(b, false, "expires_at"), d.ExpiresAt)
	return append(b, '}')
}
