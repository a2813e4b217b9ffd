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
// (nested at most fastjson.MaxDepth deep), whose text is valid UTF-8 without an
// unpaired surrogate escape, and with at most one top-level "type", and extracts the
// "type" field correctly.
func FuzzIngestBody(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"type":"order.created","data":{"id":1}}`, `[]`, `"x"`, `null`, `{"a":"\q"}`,
		`{"type":42}`, `{"type":"a\nb"}`, `{"type":"x","type":1}`, ` {"a":[1,2,{"b":null}]} `,
		`{"a":1`, `{} {}`, `{"a":"\ud800"}`, `{"a":1e999}`, "{\"a\":\"\x01\"}", `{"type":"\u00e9t\u00e9"}`,
		strings.Repeat("[", 301) + strings.Repeat("]", 301),
		// Text: invalid UTF-8, lone and paired surrogate escapes, an escaped backslash
		// before text that only looks like an escape, and U+FFFD sent as such.
		"{\"type\":\"caf\xe9\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"type":"\ud83d"}`,
		`{"a":"\udc00\ud800"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\u0041"}`, `{"a":"\\ud800"}`,
		`{"a":"\ud800\\"}`, `{"a":"\ufffd","b":"�"}`, `{"type":"\ud83d\ude00"}`,
		// Duplicate keys, also spelt with escapes.
		`{"type":"a","type":"b"}`, `{"type":"a","t\u0079pe":"b"}`, `{"a":1,"a":2,"type":"x"}`,
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
		// Both faults of the text: encoding/json decodes them to U+FFFD.
		badText := isObject && decodedReplacements(t, body) > sentReplacements(body)
		var ae *apiError
		if err != nil && !errors.As(err, &ae) {
			t.Fatalf("error %v is not an API error", err)
		}
		switch {
		case err == nil && !isObject:
			t.Fatalf("accepted %q, which is not a JSON object", body)
		case err == nil && depth-1 > fastjson.MaxDepth:
			t.Fatalf("accepted %q nested %d deep", body, depth)
		case err == nil && badText:
			t.Fatalf("accepted %q, whose text is not valid UTF-8 or holds a lone surrogate", body)
		case err != nil && ae.Code == CodeInvalidJSON && isObject && depth <= fastjson.MaxDepth && !badText:
			t.Fatalf("rejected the JSON object %q: %v", body, err)
		case err != nil && ae.Code != CodeInvalidJSON && ae != errBadType && ae != errDuplicateType && ae != errTypeNotUTF8:
			t.Fatalf("unexpected error %v for %q", err, body)
		case err != nil && ae.Status != 400:
			t.Fatalf("status %d for %q", ae.Status, body)
		}
		if !isObject || depth > fastjson.MaxDepth {
			return
		}

		raw, found, count := firstTopLevel(t, body, "type")
		if count > 1 {
			if err == nil {
				t.Fatalf("accepted %q with %d \"type\" keys", body, count)
			}
			return
		}
		if err == errDuplicateType {
			t.Fatalf("refused %q, with one \"type\", as a duplicate", body)
		}
		if badText {
			return
		}
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
// valid JSON object body, and how many top-level keys have that name.
func firstTopLevel(t *testing.T, body []byte, key string) (json.RawMessage, bool, int) {
	var first json.RawMessage
	n := 0
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
			if n == 0 {
				first = raw
			}
			n++
		}
	}
	return first, n > 0, n
}

// decodedReplacements counts the U+FFFD characters in the keys and strings of the
// valid JSON body as encoding/json decodes them: each one sent, and one for each
// invalid UTF-8 byte or unpaired surrogate escape.
func decodedReplacements(t *testing.T, body []byte) int {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("oracle: %v", err)
		}
		if s, ok := tok.(string); ok {
			n += strings.Count(s, "\uFFFD")
		}
	}
}

// sentReplacements counts the U+FFFD characters body sends: raw, or escaped as
// \ufffd (an escape only after an odd run of backslashes).
func sentReplacements(body []byte) int {
	n := bytes.Count(body, []byte("\uFFFD"))
	for i := 0; i+6 <= len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		j := i
		for j < len(body) && body[j] == '\\' {
			j++
		}
		if (j-i)%2 == 1 && j+5 <= len(body) && strings.EqualFold(string(body[j:j+5]), "ufffd") {
			n++
		}
		i = j - 1
	}
	return n
}

// TestScanStrings pins the checks the validator misses: raw control characters
// inside strings, and escaped surrogates without their pair; escaped control
// characters, whitespace between tokens, proper pairs and an escaped backslash
// before "ud800" pass.
func TestScanStrings(t *testing.T) {
	for body, want := range map[string]struct{ off, fault int }{
		"{\"a\":\"\x1d\\b0000\"}":            {6, faultControlChar},
		"{\"a\":\"\\\"\x01\"}":               {8, faultControlChar},
		"{\"a\":\"x\ty\"}":                   {7, faultControlChar},
		"{\n\t\"a\": \"\\n\\t\\u0001\"\r\n}": {0, faultNone},
		"{\"a\\\"\":\"\\\\\"}":               {0, faultNone},
		"{}":                                 {0, faultNone},
		`{"a":"\ud800"}`:                     {6, faultLoneSurrogate},
		`{"a":"x\uDFFF"}`:                    {7, faultLoneSurrogate},
		`{"a":"\ud83d\u0041"}`:               {6, faultLoneSurrogate},
		`{"a":"\udc00\ud800"}`:               {6, faultLoneSurrogate},
		`{"a":"\ud83d\ude00","b":"\ud800"}`:  {25, faultLoneSurrogate},
		`{"a":"\ud83d\ude00"}`:               {0, faultNone},
		`{"a":"\\ud800"}`:                    {0, faultNone},
		`{"\ud800":1}`:                       {2, faultLoneSurrogate},
		"{\"a\":\"\\ud800\x01\"}":            {12, faultControlChar},
	} {
		off, fault := scanStrings([]byte(body))
		if fault != want.fault || fault != faultNone && off != want.off {
			t.Errorf("scanStrings(%q) = %d at %d, want %d at %d", body, fault, off, want.fault, want.off)
		}
		if json.Valid([]byte(body)) == (want.fault == faultControlChar) {
			t.Errorf("%q: encoding/json disagrees (valid=%v)", body, json.Valid([]byte(body)))
		}
	}
}

// TestPlainRunStopsAtEachByteThatEndsPlainText puts each byte value at each position of
// runs of plain text (ASCII and UTF-8) up to three words long: plainRun must stop at
// it exactly when it is a quote, a backslash or a control character, and otherwise run
// to the end.
func TestPlainRunStopsAtEachByteThatEndsPlainText(t *testing.T) {
	for _, fill := range []byte{'x', 0xc3, 0x80, 0xff, 0x20, 0x7f} {
		for n := 0; n <= 24; n++ {
			for at := 0; at < n; at++ {
				for c := 0; c < 256; c++ {
					run := bytes.Repeat([]byte{fill}, n)
					run[at] = byte(c)
					want := n
					if c == '"' || c == '\\' || c < 0x20 {
						want = at
					}
					for start := 0; start <= at; start++ {
						if got := plainRun(run, start); got != want {
							t.Fatalf("plainRun(%q, %d) = %d, want %d", run, start, got, want)
						}
					}
				}
			}
		}
	}
}
