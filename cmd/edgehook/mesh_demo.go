package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/edgehook/edgehook/natsconf"
)

// meshDemo is the script `edgehook mesh` prints and README.md shows (with the default
// ports, the default directory and "<the token mesh printed>"); a test runs it against a
// live mesh.
const meshDemo = `export EDGEHOOK_ADMIN_TOKEN={{token}}
EDGE_A=http://{{gatewayA}} LINKS=http://{{control}}/links
# 1. create a tenant at the hub's admin API; its webhooks go to the hub's receiver
TENANT=$(curl -s -X POST http://{{admin}}/v1/tenants -H "Authorization: Bearer $EDGEHOOK_ADMIN_TOKEN" \
  -d '{"targetUrl":"http://{{receiver}}/webhooks/{tenantId}","plan":"free"}')
echo "$TENANT"
API_KEY=$(echo "$TENANT" | sed -E 's/.*"apiKey":"([^"]+)".*/\1/')
send_event() { curl -s -w ' HTTP %{http_code}\n' -X POST $EDGE_A/v1/events -H "Authorization: Bearer $API_KEY" \
  -d "{\"type\":\"order.created\",\"data\":{\"orderId\":$1}}"; }
get_event() { curl -s $EDGE_A/v1/events/$(echo "$1" | sed -E 's/.*"eventId":"([^"]+)".*/\1/') -H "Authorization: Bearer $API_KEY"; }
wait_delivered() { for i in $(seq 120); do get_event "$1" | grep '"status":"delivered"' >/dev/null && break; sleep 0.5; done; get_event "$1"; }
# 2. at edge a, once the key has reached its identity mirror, send an event and see it delivered
for i in $(seq 50); do curl -sf -o /dev/null $EDGE_A/v1/tenant -H "Authorization: Bearer $API_KEY" && break; sleep 0.2; done
E1=$(send_event 1); echo "$E1"; wait_delivered "$E1"
# 3. cut edge a's leaf link: the edge keeps accepting events (202), stored at the edge
curl -s -X POST $LINKS/a/cut
for i in $(seq 50); do curl -s $EDGE_A/metrics | grep -x 'edgehook_edge_hub_link_up 0' >/dev/null && break; sleep 0.2; done
E2=$(send_event 2); echo "$E2"
E3=$(send_event 3); echo "$E3"
# 4. edge a answers from its own queued record; its metrics show the link down and the lag
get_event "$E3"
for i in $(seq 50); do curl -s $EDGE_A/metrics | grep -E '^edgehook_edge_sourcing_lag_messages [2-9]' >/dev/null && break; sleep 0.2; done
curl -s $EDGE_A/metrics | grep '^edgehook_edge_'
bin/nats --server nats://{{natsEdgeA}} --user operator --password="$(cat {{dir}}/edge-a/operator.password)" \
  --js-domain edge-a stream report
# 5. heal it: the hub's EVENTS sources what edge a stored, and the worker delivers it
curl -s -X POST $LINKS/a/heal
wait_delivered "$E2"; wait_delivered "$E3"
# 6. at the hub: EVENTS sources INGEST_a and INGEST_b (lag 0 once caught up); every server's JetStream
bin/nats --server nats://{{natsHub}} --user operator --password="$(cat {{dir}}/hub/operator.password)" stream report
bin/nats --server nats://{{natsHub}} --user sys --password="$(cat {{dir}}/hub/sys.password)" server report jetstream
`

// meshRenderDemo fills in the demo script for the mesh on plan, its directory dir.
func meshRenderDemo(token string, plan meshPortPlan, dir string) string {
	return strings.NewReplacer(
		"{{token}}", token,
		"{{gatewayA}}", meshAddr(plan.gateway(0)),
		"{{control}}", meshAddr(plan.control()),
		"{{admin}}", meshAddr(plan.admin()),
		"{{receiver}}", meshAddr(plan.receiver()),
		"{{natsEdgeA}}", meshAddr(plan.edgeClient(0)),
		"{{natsHub}}", meshAddr(plan.hubClient(0)),
		"{{dir}}", dir,
	).Replace(meshDemo)
}

// meshRenderAddresses is the table of what listens where that the banner prints and
// README.md shows (with the default ports).
func meshRenderAddresses(plan meshPortPlan) string {
	var b strings.Builder
	row := func(what, url, more string) {
		line := fmt.Sprintf("  %-15s %-25s %s", what, url, more)
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	row("admin API", "http://"+meshAddr(plan.admin()), "at the hub, its own component and listener")
	row("receiver", "http://"+meshAddr(plan.receiver()), "at the hub")
	for e, name := range meshEdgeNames() {
		row("gateway "+name, "http://"+meshAddr(plan.gateway(e)), "EDGEHOOK_EDGE="+name+", on "+natsconf.EdgeDomain(name)+"'s server")
	}
	row("link control", "http://"+meshAddr(plan.control()), "GET /links, POST /links/{a,b}/cut, POST /links/{a,b}/heal")
	for i := range meshHubNodes {
		row("nats "+natsconf.NodeName(i+1), "nats://"+meshAddr(plan.hubClient(i)),
			fmt.Sprintf("monitor :%d, cluster :%d, leaf :%d", plan.hubMonitor(i), plan.hubCluster(i), plan.hubLeaf(i)))
	}
	for e, name := range meshEdgeNames() {
		row("nats "+natsconf.EdgeDomain(name), "nats://"+meshAddr(plan.edgeClient(e)),
			fmt.Sprintf("monitor :%d, leaf link via :%d-%d", plan.edgeMonitor(e), plan.linkProxy(e, 0), plan.linkProxy(e, meshHubNodes-1)))
	}
	return b.String()
}

// meshPrintBanner prints what runs where, the servers' pids, the admin token if it was
// generated, and the demo.
func meshPrintBanner(w io.Writer, m *meshRun, o meshSettings, generatedToken bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nedgehook mesh is up: a hub of %d nats-servers (JetStream domain %s, R%d) and edges %s, each leaf-linked to the hub through proxies the link control cuts and heals.\n\n",
		meshHubNodes, natsconf.HubDomain, meshHubNodes, strings.Join(meshEdgeNames(), " and "))
	b.WriteString(meshRenderAddresses(m.plan))
	var pids []string
	for _, s := range m.servers {
		pids = append(pids, fmt.Sprintf("%s pid %d", s.Name, s.Pid()))
	}
	fmt.Fprintf(&b, "\nnats-server processes: %s.\nConfigs, passwords (mode 0600), JetStream stores and server logs are in %s/hub and %s/edge-<name>;\nthe webhook configuration is in %s/dev-secrets.json.\n\n", strings.Join(pids, ", "), o.dir, o.dir, o.dir)
	if generatedToken {
		fmt.Fprintf(&b, "Admin token (generated; set EDGEHOOK_ADMIN_TOKEN to choose your own):\n  %s\n\n", o.adminToken)
	}
	fmt.Fprintf(&b, "Demo (paste into another shell, in the repository):\n\n%s\nCtrl-C stops the mesh.\n", meshRenderDemo(o.adminToken, m.plan, o.dir))
	io.WriteString(w, b.String())
}
