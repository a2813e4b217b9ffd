package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// FuzzIngestBody checks the ingest body validator against encoding/json: it never
// panics, accepts exactly the RFC 8259 documents whose top-level value is an object
// (nested at most fastjson.MaxDepth deep), and extracts the "type" field correctly.
func FuzzIngestBody(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"type":"order.created","data":{"id":1}}`, `[]`, `"x"`, `null`, `{"a":"\q"}`,
		`{"type":42}`, `{"type":"a\nb"}`, `{"type":"x","type":1}`, ` {"a":[1,2,{"b":null}]} `,
		`{"a":1`, `{} {}`, `{"a":"\ud800"}`, `{"a":1e999}`, "{\"a\":\"\x01\"}", `{"type":"\u00e9t\u00e9"}`,
		strings.Repeat("[", 301) + strings.Repeat("]", 301),
	} {
		f.Add([]byte(s))
	}
	var pool fastjson.ParserPool
	f.Fuzz(func(t *testing.T, body []byte) {
		p := pool.Get()
		typ, err := parseEvent(p, body)
		pool.Put(p)

		isObject := json.Valid(body) && firstNonSpace(body) == '{'
		depth := bracketDepth(body)
		var ae *apiError
		if err != nil && !errors.As(err, &ae) {
			t.Fatalf("error %v is not an API error", err)
		}
		switch {
		case err == nil && !isObject:
			t.Fatalf("accepted %q, which is not a JSON object", body)
		case err == nil && depth-1 > fastjson.MaxDepth:
			t.Fatalf("accepted %q nested %d deep", body, depth)
		case err != nil && ae.Code == CodeInvalidJSON && isObject && depth <= fastjson.MaxDepth:
			t.Fatalf("rejected the JSON object %q: %v", body, err)
		case err != nil && ae.Code != CodeInvalidJSON && ae != errBadType:
			t.Fatalf("unexpected error %v for %q", err, body)
		case err != nil && ae.Status != 400:
			t.Fatalf("status %d for %q", ae.Status, body)
		}
		if !isObject || depth > fastjson.MaxDepth {
			return
		}

		raw, found := firstTopLevel(t, body, "type")
		var want string
		wantOK := !found
		if found && json.Unmarshal(raw, &want) == nil {
			wantOK = len(want) <= MaxEventTypeLen && !strings.ContainsFunc(want, func(r rune) bool { return r < 0x20 || r == 0x7f })
		}
		simple := !bytes.Contains(raw, []byte(`\`)) && utf8.Valid(raw) // encoding/json and fastjson agree on these
		switch {
		case err == nil && found && !simple:
			// fastjson keeps invalid UTF-8 and lone surrogates that encoding/json
			// replaces; the result only has to be a valid header value.
			if !validEventType([]byte(typ)) {
				t.Fatalf("accepted type %q", typ)
			}
		case err == nil && !wantOK:
			t.Fatalf("accepted %q with type %s", body, raw)
		case err == nil && typ != want:
			t.Fatalf("type %q, want %q (body %q)", typ, want, body)
		case err != nil && wantOK && simple:
			t.Fatalf("rejected %q (type %s): %v", body, raw, err)
		}
	})
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

// bracketDepth bounds fastjson's nesting depth from above: the deepest nesting of [
// and { outside strings, plus one.
func bracketDepth(b []byte) int {
	depth, maxDepth, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	// A scalar inside the innermost container is one level deeper, as fastjson counts.
	return maxDepth + 1
}

// firstTopLevel returns the raw value of the first top-level key named key of the
// valid JSON object body.
func firstTopLevel(t *testing.T, body []byte, key string) (json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // {
		t.Fatalf("oracle: %v", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("oracle: %v", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil && err != io.EOF {
			t.Fatalf("oracle: %v", err)
		}
		if tok.(string) == key {
			return raw, true
		}
	}
	return nil, false
}

// TestControlCharInString pins the check the validator misses: raw control characters
// inside strings are refused, escaped ones and whitespace between tokens are not.
func TestControlCharInString(t *testing.T) {
	for body, want := range map[string]bool{
		"{\"a\":\"\x1d\\b0000\"}":            true,
		"{\"a\":\"\\\"\x01\"}":               true,
		"{\"a\":\"x\ty\"}":                   true,
		"{\n\t\"a\": \"\\n\\t\\u0001\"\r\n}": false,
		"{\"a\\\"\":\"\\\\\"}":               false,
		"{}":                                 false,
	} {
		if got := controlCharInString([]byte(body)); got != want {
			t.Errorf("controlCharInString(%q) = %v, want %v", body, got, want)
		}
		if json.Valid([]byte(body)) == want {
			t.Errorf("%q: encoding/json disagrees (valid=%v)", body, json.Valid([]byte(body)))
		}
	}
}
