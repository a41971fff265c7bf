package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// rawClient is the query phase's load generator: a lean HTTP/1.1 keep-alive
// GET client on one TCP connection, used by one goroutine. net/http's client
// costs two goroutines per connection, channel hand-offs, header maps and
// allocations per request: on a 2-core machine with 50 clients that is a
// third of the CPU, which queues the server and inflates what is measured.
// This client builds the request into a reused buffer, writes it with one
// Write and parses the answer from a reused bufio.Reader into a reused body
// buffer. It understands exactly what a Go server sends to a GET:
// Content-Length or chunked bodies, and Connection: close.
//
// Any error closes the connection; the next Get dials again. Nothing is
// retried: the caller counts the error.
type rawClient struct {
	ctx  context.Context
	addr string // host:port, dialed and sent as Host
	conn net.Conn
	stop func() bool // unregisters the ctx watcher of conn
	br   *bufio.Reader
	req  []byte
	body []byte
}

// maxRawBody bounds a response body, so a broken length cannot exhaust memory.
const maxRawBody = 64 << 20

// newRawClient returns a client of the server at addr (host:port). The
// connection is dialed on the first Get; ctx ending interrupts any Get in
// flight.
func newRawClient(ctx context.Context, addr string) *rawClient {
	return &rawClient{ctx: ctx, addr: addr}
}

// Get sends GET target (path?query) and returns the status and the body.
// The body is valid until the next Get.
func (c *rawClient) Get(target string) (int, []byte, error) {
	status, reuse, err := c.roundTrip(target)
	if err != nil || !reuse {
		c.Close()
	}
	if err != nil {
		return 0, nil, err
	}
	return status, c.body, nil
}

// Close closes the connection, if any.
func (c *rawClient) Close() {
	if c.conn == nil {
		return
	}
	c.stop()
	c.conn.Close()
	c.conn = nil
}

func (c *rawClient) dial() error {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(c.ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn = conn
	// A past deadline makes the blocked Read or Write return at once.
	c.stop = context.AfterFunc(c.ctx, func() { conn.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck // the conn may be closed already
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

// roundTrip does one exchange into c.body; reuse reports whether the
// connection may carry the next request.
func (c *rawClient) roundTrip(target string) (status int, reuse bool, err error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, false, err
		}
	}
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, target...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\n\r\n"...)
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, false, err
	}
	for {
		h, err := c.readHead()
		if err != nil {
			return 0, false, err
		}
		if h.status/100 == 1 && h.status != 101 {
			continue // an interim answer: the final one follows
		}
		c.body = c.body[:0]
		switch {
		case h.status == 204 || h.status == 304:
			// no body, whatever the headers say
		case h.chunked:
			err = c.readChunked()
		case h.length >= 0:
			err = c.readN(h.length)
		default:
			err = fmt.Errorf("status %d: neither Content-Length nor chunked", h.status)
		}
		return h.status, err == nil && !h.close, err
	}
}

// head is what the client uses of a response's status line and headers.
type head struct {
	status  int
	length  int // -1: no Content-Length
	chunked bool
	close   bool
}

func (c *rawClient) readHead() (head, error) {
	line, err := c.readLine()
	if err != nil {
		return head{}, err
	}
	// "HTTP/1.1 200 OK": the code is bytes 9 to 12.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return head{}, fmt.Errorf("bad status line %q", line)
	}
	http10 := line[7] == '0' // HTTP/1.0 closes unless told otherwise
	h := head{length: -1, close: http10}
	h.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || h.status < 100 {
		return head{}, fmt.Errorf("bad status line %q", line)
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return head{}, err
		}
		if len(line) == 0 {
			return h, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return head{}, fmt.Errorf("bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || n > maxRawBody || (h.length >= 0 && n != h.length) {
				return head{}, fmt.Errorf("bad Content-Length %q", value)
			}
			h.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return head{}, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
			h.chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				if bytes.EqualFold(tok, []byte("close")) {
					h.close = true
				} else if http10 && bytes.EqualFold(tok, []byte("keep-alive")) {
					h.close = false
				}
			}
		}
	}
}

// readLine returns the next line without its CRLF (or LF); it is valid
// until the next read.
func (c *rawClient) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("response line too long")
		}
		return nil, noEOF(err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readN appends the next n bytes to c.body.
func (c *rawClient) readN(n int) error {
	if len(c.body)+n > maxRawBody {
		return fmt.Errorf("body over %d bytes", maxRawBody)
	}
	l := len(c.body)
	c.body = slices.Grow(c.body, n)[:l+n]
	_, err := io.ReadFull(c.br, c.body[l:])
	return noEOF(err)
}

// readChunked reads a chunked body into c.body, then the trailers.
func (c *rawClient) readChunked() error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";")) // chunk extensions are ignored
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 || n > maxRawBody {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 {
			break
		}
		if err := c.readN(int(n)); err != nil {
			return err
		}
		if line, err := c.readLine(); err != nil {
			return err
		} else if len(line) != 0 {
			return fmt.Errorf("chunk not followed by CRLF: %q", line)
		}
	}
	for { // trailers, up to the empty line
		line, err := c.readLine()
		if err != nil || len(line) == 0 {
			return err
		}
	}
}

// noEOF turns an end of stream inside a response into an error that says so.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
