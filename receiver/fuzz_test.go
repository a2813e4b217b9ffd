package receiver_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/receiver"
	"github.com/edgehook/edgehook/webhook"
)

// FuzzReceiverRequest feeds arbitrary webhook requests (tenant, headers, body, signed
// with the tenant's secret or not) through the receiver's handler, parsed from the
// wire form, against real NATS. It checks that the handler never panics, answers only
// 204, 401 or 413 with the JSON error shape, verifies only what the tenant's secret
// signed, accepts a correctly signed well-formed webhook, and answers the same
// request for an unknown tenant exactly as for a known tenant it does not verify for.
//
// The request is built from raw bytes, so a tenant, id or extra signature holding a
// line break can add headers or end them early; what the handler was handed is
// compared with what was signed before a 401 counts as a wrong refusal.
func FuzzReceiverRequest(f *testing.F) {
	e := start(f, receiver.Config{ConfigReadRate: 1e9, ConfigReadBurst: 1 << 30})
	secret := newSecret(f)
	e.tenant("acme", secret)
	handler := e.srv.Handler()

	validSig := webhook.Sign("msg_1", time.Now(), []byte(`{}`), secret)
	f.Add("acme", "msg_1", int64(0), true, "", "", []byte(`{"n":1}`))
	f.Add("acme", "msg_1", int64(-299), true, "", "v2,abc", []byte(`{}`))
	f.Add("acme", "msg_1", int64(301), true, "", "", []byte(`{}`))
	f.Add("acme", "msg_1", int64(0), false, "1700000000", validSig, []byte(`{}`))
	f.Add("ghost", "msg 1", int64(0), false, "-1", "v1,", []byte{})
	f.Add("acme/x", "", int64(0), false, "+12", "v1,"+strings.Repeat("A", 44), []byte("x"))
	f.Add("a.b", "msg_é", int64(1<<62), true, "99999999999999999999", "v1 v1,,", []byte{0, 1})
	f.Add(strings.Repeat("a", 65), strings.Repeat("i", 300), int64(0), true, "", strings.Repeat("v1,x ", 20), []byte("{}"))
	// Requests whose bytes are not the webhook that was signed: a header added before
	// the signed one, or the headers ended before Content-Length.
	f.Add("acme HTTP/1.1\r\nwebhook-id: other\r\nX:", "msg_1", int64(0), true, "", "", []byte(`{}`))
	f.Add("acme HTTP/1.1\r\nwebhook-signature: v1,"+strings.Repeat("A", 44)+"\r\nX:", "msg_1", int64(0), true, "", "", []byte(`{}`))
	f.Add("acme", "msg_1", int64(0), true, "", "\n", []byte(`{"n":1}`))
	f.Add("acme", "msg_1", int64(0), true, "", "\r\n\r\n", []byte(`{}`))
	f.Add("acme", "msg_1", int64(0), true, "", "\r\nContent-Length: 0", []byte(`{}`))
	// Signed, with webhook-signature at its bounds and one past them (the signed
	// signature and its space take 48 bytes).
	for _, n := range []int{receiver.MaxSignatures - 1, receiver.MaxSignatures} {
		f.Add("acme", "msg_1", int64(0), true, "", strings.TrimSpace(strings.Repeat("v2,x ", n)), []byte(`{}`))
	}
	for _, n := range []int{receiver.MaxSignatureLen - 48, receiver.MaxSignatureLen - 47} {
		f.Add("acme", "msg_1", int64(0), true, "", strings.Repeat("x", n), []byte(`{}`))
	}

	f.Fuzz(func(t *testing.T, tenant, id string, offset int64, sign bool, rawTS, rawSig string, body []byte) {
		now := time.Now()
		ts, sig, signature := rawTS, rawSig, ""
		if sign {
			at := time.Unix(now.Unix()+offset, 0)
			ts = strconv.FormatInt(at.Unix(), 10)
			signature = webhook.Sign(id, at, body, secret)
			sig = signature
			if rawSig != "" {
				sig += " " + rawSig
			}
		}
		request := func(tenant string) []byte {
			var b bytes.Buffer
			b.WriteString("POST /webhooks/" + tenant + " HTTP/1.1\r\nHost: receiver\r\n")
			b.WriteString("webhook-id: " + id + "\r\nwebhook-timestamp: " + ts + "\r\nwebhook-signature: " + sig + "\r\n")
			b.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
			b.Write(body)
			return b.Bytes()
		}
		// asSigned reports whether req carries the webhook that was signed, within the
		// bounds of webhook-signature: the same id, timestamp and body, and the signed
		// signature first among at most MaxSignatures entries in at most
		// MaxSignatureLen bytes.
		asSigned := func(req *fasthttp.Request) bool {
			h := &req.Header
			header := string(h.Peek(webhook.HeaderSignature))
			entries := strings.FieldsFunc(header, func(r rune) bool { return r == ' ' || r == '\t' })
			return string(h.Peek(webhook.HeaderID)) == id && string(h.Peek(webhook.HeaderTimestamp)) == ts &&
				bytes.Equal(req.Body(), body) && len(header) <= receiver.MaxSignatureLen &&
				len(entries) <= receiver.MaxSignatures && len(entries) > 0 && entries[0] == signature
		}
		serve := func(raw []byte) (path string, status int, answer string, signed, ok bool) {
			var req fasthttp.Request
			if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
				return "", 0, "", false, false // not a request fasthttp would hand the handler
			}
			signed = sign && asSigned(&req)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, nil, nil)
			handler(&ctx)
			status = ctx.Response.StatusCode()
			if status != fasthttp.StatusNoContent {
				var v struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal(ctx.Response.Body(), &v); err != nil || v.Error.Code == "" || v.Error.Message == "" {
					t.Fatalf("answer %d %q is not the JSON error shape", status, ctx.Response.Body())
				}
				if ct := string(ctx.Response.Header.ContentType()); ct != "application/json" {
					t.Fatalf("answer %d with Content-Type %q", status, ct)
				}
			}
			if bytes.Contains(ctx.Response.Body(), []byte(strings.TrimPrefix(secret.Reveal(), webhook.SecretPrefix))) {
				t.Fatal("an answer carries the signing secret")
			}
			return string(ctx.Path()), status, string(ctx.Response.Body()), signed, true
		}

		path, status, answer, signed, ok := serve(request(tenant))
		if !ok {
			return
		}
		switch status {
		case fasthttp.StatusNoContent, fasthttp.StatusUnauthorized, fasthttp.StatusRequestEntityTooLarge,
			fasthttp.StatusNotFound, fasthttp.StatusMethodNotAllowed:
		default:
			t.Fatalf("status %d (%s), want 204, 401, 404, 405 or 413", status, answer)
		}
		if status == fasthttp.StatusNoContent && (!sign || path != "/webhooks/acme") {
			t.Fatalf("verified a webhook to %s the tenant's secret did not sign (sign=%v)", path, sign)
		}
		wellFormed := len(id) > 0 && len(id) <= 256 && strings.IndexFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) < 0
		if signed && path == "/webhooks/acme" && wellFormed && offset > -290 && offset < 290 && status != fasthttp.StatusNoContent {
			t.Fatalf("a well-formed webhook signed with the tenant's secret was answered %d %s", status, answer)
		}

		// The same request for the known tenant and an unknown one.
		_, known, knownAnswer, _, ok := serve(request("acme"))
		if !ok {
			return
		}
		_, unknown, unknownAnswer, _, _ := serve(request("ghost"))
		if known == fasthttp.StatusNoContent {
			if unknown != fasthttp.StatusUnauthorized {
				t.Fatalf("unknown tenant answered %d %s, want 401", unknown, unknownAnswer)
			}
			return
		}
		if known != unknown || knownAnswer != unknownAnswer {
			t.Fatalf("known tenant: %d %s; unknown tenant: %d %s; want the same", known, knownAnswer, unknown, unknownAnswer)
		}
	})
}
