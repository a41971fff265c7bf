package timeline

import (
	"github.com/simtrail/simtrail/pkg/httpx"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/simtrail/simtrail/pkg/jsonx"
)

// writeUsage answers a usage request. The JSON is appended by hand rather
// than reflected by encoding/json: a 31-day answer is 31 buckets of two
// timestamps each, and rendering them was most of the handler's CPU and
// allocations (docs/performance.md). The bytes are exactly those c.JSON
// would send (a test holds them equal); ?pretty and debug mode still go
// through c.JSON.
func writeUsage(c echo.Context, resp *UsageResponse, sums []bucketSum, grouped bool) error {
	if httpx.QueryHas(c.Request().URL.RawQuery, "pretty") || c.Echo().Debug {
		resp.Buckets = bucketsOf(sums, grouped)
		return c.JSON(http.StatusOK, resp)
	}
	bp := usageBufs.Get().(*[]byte)
	b := appendUsageJSON((*bp)[:0], resp, sums, grouped)
	err := c.JSONBlob(http.StatusOK, b) // copies b into the connection's buffer
	if cap(b) <= 64<<10 {
		*bp = b
		usageBufs.Put(bp)
	}
	return err
}

// usageBufs recycles answer buffers (a 31-day answer is about 3 KiB).
var usageBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// appendUsageJSON appends resp with sums as its buckets (with a location
// when grouped), as encoding/json's Encoder would write it (field order,
// escaping, trailing newline).
func appendUsageJSON(b []byte, resp *UsageResponse, sums []bucketSum, grouped bool) []byte {
	b = append(b, `{"iccid":`...)
	b = jsonx.AppendString(b, resp.ICCID)
	b = append(b, `,"granularity":`...)
	b = jsonx.AppendString(b, string(resp.Granularity))
	b = append(b, `,"from":`...)
	b = jsonx.AppendOptString(b, resp.From)
	b = append(b, `,"to":`...)
	b = jsonx.AppendOptString(b, resp.To)
	b = append(b, `,"source":`...)
	b = jsonx.AppendString(b, resp.Source)
	b = append(b, `,"buckets":[`...)
	for i, s := range sums {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"start":"`...)
		b = appendTime(b, s.start)
		b = append(b, `","end":"`...)
		b = appendTime(b, s.end)
		b = append(b, `","data_bytes":`...)
		b = strconv.AppendInt(b, s.bytes, 10)
		if grouped {
			b = append(b, `,"location":`...)
			b = jsonx.AppendString(b, s.loc)
		}
		b = append(b, '}')
	}
	b = append(b, `],"total_data_bytes":`...)
	b = strconv.AppendInt(b, resp.TotalDataBytes, 10)
	return append(b, "}\n"...)
}

// appendTime appends t as formatTime does. Bucket bounds are whole
// seconds, which are written digit by digit: AppendFormat's layout
// interpretation was a tenth of a 31-day answer's cost.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if t.Nanosecond() != 0 || y < 0 || y > 9999 {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	h, mi, sec := t.Clock()
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), 'Z')
	return b
}
