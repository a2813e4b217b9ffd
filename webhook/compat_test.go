package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/edgehook/edgehook/webhook"
)

// TestStandardWebhooksJSLibrary checks our signatures against an independent
// implementation: the official `standardwebhooks` npm package, installed at the repo
// root by `make tools` (npm ci). It verifies what our Sign produced, including a
// two-secret rotation header, and signs a message our Verify must accept.
func TestStandardWebhooksJSLibrary(t *testing.T) {
	node := jsLibrary(t) // node resolves node_modules upward from testdata/

	current, previous, unrelated := mustNew(t), mustNew(t), mustNew(t)
	spec := mustParse(t, specSecret)
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"type":"invoice.paid","amount":4200,"note":"ünïcödé ✓ 🚀"}`)
	rotation := webhook.Sign("msg_rot", now, body, current, previous)

	type verifyCase struct {
		name      string
		secret    webhook.Secret
		id        string
		signature string
		body      []byte
		want      bool
	}
	verifyCases := []verifyCase{
		{"single secret", current, "msg_1", webhook.Sign("msg_1", now, body, current), body, true},
		{"spec example secret", spec, "msg_spec", webhook.Sign("msg_spec", now, []byte(specPayload), spec), []byte(specPayload), true},
		{"empty body", current, "msg_empty", webhook.Sign("msg_empty", now, nil, current), nil, true},
		{"rotation header, current secret", current, "msg_rot", rotation, body, true},
		{"rotation header, previous secret", previous, "msg_rot", rotation, body, true},
		// The negatives prove the harness can observe a failure.
		{"rotation header, unrelated secret", unrelated, "msg_rot", rotation, body, false},
		{"tampered body", current, "msg_1", webhook.Sign("msg_1", now, body, current), append(bytes.Clone(body), ' '), false},
	}

	type signCase struct {
		Secret    string `json:"secret"`
		ID        string `json:"id"`
		Timestamp int64  `json:"timestamp"`
		Body      string `json:"body"`
	}
	signCases := []signCase{
		{current.Reveal(), "msg_js_1", now.Unix(), base64.StdEncoding.EncodeToString(body)},
		{specSecret, specMsgID, specTimestamp, base64.StdEncoding.EncodeToString([]byte(specPayload))},
	}

	type verifyInput struct {
		Secret    string `json:"secret"`
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		Signature string `json:"signature"`
		Body      string `json:"body"`
	}
	var in struct {
		Verify []verifyInput `json:"verify"`
		Sign   []signCase    `json:"sign"`
	}
	for _, c := range verifyCases {
		in.Verify = append(in.Verify, verifyInput{c.secret.Reveal(), c.id, ts, c.signature, base64.StdEncoding.EncodeToString(c.body)})
	}
	in.Sign = signCases
	stdin, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "verify.mjs"))
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node testdata/verify.mjs: %v\n%s", err, stderr.String())
	}
	var out struct {
		Verify []struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"verify"`
		Sign []string `json:"sign"`
	}
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("node output %q: %v", stdout, err)
	}
	if len(out.Verify) != len(verifyCases) || len(out.Sign) != len(signCases) {
		t.Fatalf("node answered %d verifications and %d signatures, want %d and %d", len(out.Verify), len(out.Sign), len(verifyCases), len(signCases))
	}

	for i, c := range verifyCases {
		if got := out.Verify[i]; got.OK != c.want {
			t.Errorf("JS verify of our %s: ok=%v (%s), want %v", c.name, got.OK, got.Error, c.want)
		}
	}

	// What the JS library signs, our Verify accepts, and our Sign produces the same
	// header byte for byte.
	jsSig := out.Sign[0]
	if err := webhook.Verify("msg_js_1", ts, jsSig, body, now, webhook.DefaultTolerance, current); err != nil {
		t.Errorf("our Verify of the JS library's signature %q: %v", jsSig, err)
	}
	if want := webhook.Sign("msg_js_1", now, body, current); jsSig != want {
		t.Errorf("JS signature %q, ours %q", jsSig, want)
	}
	if out.Sign[1] != specSignature {
		t.Errorf("JS signature of the spec example %q, want %q", out.Sign[1], specSignature)
	}
}

// jsLibrary returns the node binary, failing the test (not skipping it) when node or
// the npm package at the repository root is missing.
func jsLibrary(t *testing.T) (node string) {
	t.Helper()
	const hint = "run `make tools` (it runs `npm ci` at the repository root) to install the standardwebhooks npm package"
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatalf("no go.mod above %s", wd)
		}
		root = parent
	}
	node, err = exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (%v); install Node.js and %s", err, hint)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "standardwebhooks", "package.json")); err != nil {
		t.Fatalf("the standardwebhooks npm package is missing (%v); %s", err, hint)
	}
	return node
}
