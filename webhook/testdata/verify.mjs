// Independent implementation check: the official Standard Webhooks JavaScript
// library verifies signatures made by edgehook's Go webhook package and signs
// messages for it to verify. Driven by compat_test.go.
//
// stdin:  {"verify":[{"secret","id","timestamp","signature","body"}],
//          "sign":[{"secret","id","timestamp","body"}]}   (body is base64)
// stdout: {"verify":[{"ok":bool,"error":string}], "sign":[string]}
import swh from "standardwebhooks";

const { Webhook } = swh;

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const verify = (input.verify ?? []).map((c) => {
  try {
    new Webhook(c.secret).verify(
      Buffer.from(c.body, "base64"),
      {
        "webhook-id": c.id,
        "webhook-timestamp": c.timestamp,
        "webhook-signature": c.signature,
      },
      { jsonParse: false },
    );
    return { ok: true, error: "" };
  } catch (e) {
    return { ok: false, error: String(e && e.message) };
  }
});

const sign = (input.sign ?? []).map((c) =>
  new Webhook(c.secret).sign(
    c.id,
    new Date(c.timestamp * 1000),
    Buffer.from(c.body, "base64"),
  ),
);

process.stdout.write(JSON.stringify({ verify, sign }));
