package providers

import (
	"unicode"
	"unicode/utf8"
)

// A hand-written single-pass scanner replaces encoding/json here because
// profiles of the ingest phase showed json.Unmarshal (a validating scan,
// then a reflective decode, then again for data and each sub-object) as the
// largest CPU cost we control. The bodies are small and the schemas fixed,
// so a few hundred lines that validate and decode in one pass, allocating
// only the strings kept, beat a general library; a library would also bring
// its own notion of validity, key matching and duplicate keys, all of which
// must stay exactly those of encoding/json (the differential tests in
// diff_test.go hold the two to that against reference_test.go).
//
// The rules copied from encoding/json (v1, Go 1.26) are:
//   - validity is json.Valid's: RFC 8259 grammar, invalid UTF-8 allowed in
//     strings, nesting deeper than 10000 rejected;
//   - a key matches a struct field exactly or else under its case folding
//     (foldKey), after escapes are resolved; no two fields of our structs
//     fold alike, so exact-first never picks a different field;
//   - a later duplicate key replaces an earlier one, except that objects
//     merge into the struct, pointer, map or slice element already there;
//   - a value of the wrong JSON type for a field leaves the field as it was,
//     except that a non-null value allocates a nil struct pointer;
//   - the flex* and text types keep their UnmarshalJSON methods, which are
//     called with the raw value exactly as encoding/json would call them.

// maxDepth is encoding/json's maxNestingDepth.
const maxDepth = 10000

// scanner walks one body. After a syntax error bad is set and pos is moved
// to the end, so every loop that reads further stops at once.
type scanner struct {
	data  []byte
	pos   int
	depth int
	bad   bool

	// The current object key: its raw text with the quotes, and, when it
	// has escapes or non-ASCII bytes, its decoded text and folded form
	// (decodeKey).
	key        []byte
	keySimple  bool
	keyDecoded bool
	keyText    string
	keyFolded  []byte
}

func (s *scanner) fail() {
	s.bad = true
	s.pos = len(s.data)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// topObject starts a body and reports whether it is an object, in which
// case the caller decodes it (or skips it) from the opening brace.
func (s *scanner) topObject() bool { return s.peek() == '{' }

// finish reports whether the whole body was one valid JSON value.
func (s *scanner) finish() bool {
	s.skipSpace()
	return !s.bad && s.pos == len(s.data)
}

// expect consumes c after optional space, or fails.
func (s *scanner) expect(c byte) bool {
	if s.peek() != c {
		s.fail()
		return false
	}
	s.pos++
	return true
}

// open consumes the opening bracket c and enforces the depth limit.
func (s *scanner) open(c byte) bool {
	if !s.expect(c) {
		return false
	}
	if s.depth++; s.depth > maxDepth {
		s.fail()
		return false
	}
	return true
}

// openObject consumes '{' and, when the object has a first member, its key
// and colon. It reports whether there is a member to read; the caller
// reads its value and calls nextMember.
func (s *scanner) openObject() bool {
	if !s.open('{') || s.closes('}') {
		return false
	}
	return s.memberKey()
}

// nextMember consumes the ',' and key of the next member, or the closing
// brace, reporting whether there is a member to read.
func (s *scanner) nextMember() bool {
	if s.peek() == ',' {
		s.pos++
		return s.memberKey()
	}
	if !s.closes('}') {
		s.fail()
	}
	return false
}

// closes consumes the closing bracket c when it comes next.
func (s *scanner) closes(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.pos++
	s.depth--
	return true
}

func (s *scanner) memberKey() bool {
	if s.peek() != '"' {
		s.fail()
		return false
	}
	start := s.pos
	simple := s.str()
	if s.bad {
		return false
	}
	s.key = s.data[start:s.pos]
	s.keySimple, s.keyDecoded = simple, false
	return s.expect(':')
}

// decodeKey resolves the escapes and invalid UTF-8 of a key that is not
// simple, once and only when it is compared: keys of skipped objects
// never need it.
func (s *scanner) decodeKey() {
	if !s.keyDecoded {
		s.keyText, _ = unquote(s.key)
		s.keyFolded = foldKey(s.keyFolded[:0], s.keyText)
		s.keyDecoded = true
	}
}

// openArray and nextElement are openObject and nextMember for arrays.
func (s *scanner) openArray() bool {
	return s.open('[') && !s.closes(']')
}

func (s *scanner) nextElement() bool {
	if s.peek() == ',' {
		s.pos++
		return true
	}
	if !s.closes(']') {
		s.fail()
	}
	return false
}

// is reports whether the current key selects the struct field named name,
// which is ASCII: equal under encoding/json's folding (ASCII letters upper
// cased, other runes folded to the smallest of their fold set).
func (s *scanner) is(name string) bool {
	k := s.key[1 : len(s.key)-1]
	if !s.keySimple {
		s.decodeKey()
		k = s.keyFolded
	}
	if len(k) != len(name) {
		return false
	}
	for i := 0; i < len(k); i++ {
		if upperASCII(k[i]) != upperASCII(name[i]) {
			return false
		}
	}
	return true
}

// isExact reports whether the decoded key is name, as a map key must be.
func (s *scanner) isExact(name string) bool {
	if s.keySimple {
		return string(s.key[1:len(s.key)-1]) == name
	}
	s.decodeKey()
	return s.keyText == name
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// foldKey is encoding/json's appendFoldedName.
func foldKey(out []byte, in string) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			out = append(out, upperASCII(c))
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(in[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

// foldRune returns the smallest rune in r's fold set.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// value consumes one value and returns its bytes, without surrounding
// space, as encoding/json hands them to an UnmarshalJSON method; nil after
// a syntax error.
func (s *scanner) value() []byte {
	start := s.mark()
	s.skip()
	return s.since(start)
}

// skip consumes one value, validating it.
func (s *scanner) skip() {
	switch s.peek() {
	case '{':
		for more := s.openObject(); more; more = s.nextMember() {
			s.skip()
		}
	case '[':
		for more := s.openArray(); more; more = s.nextElement() {
			s.skip()
		}
	case '"':
		s.str()
	case 't':
		s.literal("true")
	case 'f':
		s.literal("false")
	case 'n':
		s.literal("null")
	default:
		s.number()
	}
}

func (s *scanner) literal(lit string) {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		s.fail()
		return
	}
	s.pos += len(lit)
}

// number consumes -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) number() {
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = digits(d, i)
	default:
		s.fail()
		return
	}
	if i < len(d) && d[i] == '.' {
		j := digits(d, i+1)
		if j == i+1 {
			s.fail()
			return
		}
		i = j
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			s.fail()
			return
		}
		i = j
	}
	s.pos = i
}

func digits(d []byte, i int) int {
	for i < len(d) && d[i] >= '0' && d[i] <= '9' {
		i++
	}
	return i
}

// str consumes a string at s.pos (which is '"'). It reports whether the
// string is simple: no escapes and only ASCII, so its bytes are its value.
// Like encoding/json's scanner it rejects control characters and bad
// escapes but accepts invalid UTF-8, which decoding later replaces.
func (s *scanner) str() (simple bool) {
	d := s.data
	simple = true
	for i := s.pos + 1; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return simple
		case c == '\\':
			simple = false
			if i++; i >= len(d) {
				s.fail()
				return false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				continue
			case 'u':
				if i+4 < len(d) && isHex(d[i+1]) && isHex(d[i+2]) && isHex(d[i+3]) && isHex(d[i+4]) {
					i += 4
					continue
				}
			}
			s.fail()
			return false
		case c < 0x20:
			s.fail()
			return false
		case c >= utf8.RuneSelf:
			simple = false
		}
	}
	s.fail()
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// The field decoders below hand the raw value to the type's UnmarshalJSON,
// which is what encoding/json does for these types whatever the value's
// JSON type (null included), so the semantics are those methods'.

func (s *scanner) num(v *flexNumber) { _ = v.UnmarshalJSON(s.value()) }
func (s *scanner) id(v *flexString)  { _ = v.UnmarshalJSON(s.value()) }
func (s *scanner) text(v *text)      { _ = v.UnmarshalJSON(s.value()) }
func (s *scanner) flag(v *flexBool)  { _ = v.UnmarshalJSON(s.value()) }

// pointer decodes a *T member as encoding/json does: null sets it nil, any
// other value allocates it when nil, and an object is merged into it by
// fields (a wrong-typed value is skipped, leaving it allocated).
func pointer[T any](s *scanner, p **T, fields func(*scanner, *T)) {
	if s.peek() == 'n' {
		s.skip()
		*p = nil
		return
	}
	if *p == nil {
		*p = new(T)
	}
	if s.peek() == '{' {
		fields(s, *p)
		return
	}
	s.skip()
}

// object decodes a model member that was a json.RawMessage decoded
// separately before: the last value sent wins whole, with no merging, and
// a value that is not an object yields nil.
func object[T any](s *scanner, fields func(*scanner, *T)) *T {
	if s.peek() != '{' {
		s.skip()
		return nil
	}
	v := new(T)
	fields(s, v)
	return v
}

// mark returns the start of the next value, for since.
func (s *scanner) mark() int {
	s.skipSpace()
	return s.pos
}

// since returns the bytes consumed from start, as a json.RawMessage member
// would have held them.
func (s *scanner) since(start int) []byte {
	if s.bad {
		return nil
	}
	return s.data[start:s.pos]
}

// scanBody decodes raw into v with fields when it is an object, and
// reports whether raw is valid JSON and whether it is an object. v is
// meaningful only for a valid object.
func scanBody[T any](raw []byte, v *T, fields func(*scanner, *T)) (valid, isObject bool) {
	s := scanner{data: raw}
	if isObject = s.topObject(); isObject {
		fields(&s, v)
	} else {
		s.skip()
	}
	if !s.finish() {
		return false, false
	}
	return true, isObject
}
