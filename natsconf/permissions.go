package natsconf

import (
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Component names one edgehook role that connects to NATS as its own user.
type Component string

// The components of the least-privilege table in DESIGN.md.
const (
	Gateway  Component = "gateway"
	Admin    Component = "admin"
	Worker   Component = "worker"
	Receiver Component = "receiver"
	DLQ      Component = "dlq"
)

// Components lists every component with a NATS user.
var Components = []Component{Gateway, Admin, Worker, Receiver, DLQ}

// ConfigChangedPrefix is followed by a tenant id; the admin API announces webhook
// configuration changes there so workers and receivers drop cached entries.
const ConfigChangedPrefix = "edgehook.config.changed."

// AdminTenantSubject is where gateways relay a tenant's own requests about its endpoint
// and keys (GET/PATCH /v1/tenant, /v1/tenant/...) to the admin API, which answers them
// (allow_responses: it may publish nowhere else). The request carries the HTTP method
// and path in HeaderRelayMethod and HeaderRelayPath, the tenant's Authorization header
// and the body; the reply the status in HeaderRelayStatus, the answer's headers and
// body.
const AdminTenantSubject = "edgehook.admin.tenant"

// AdminQueue is the queue group of the admin API's subscription: each relayed request
// is answered once, whichever admin instance takes it.
const AdminQueue = "admin"

// Headers of a relayed tenant request and of its answer.
const (
	HeaderRelayMethod = "Edgehook-Method"
	HeaderRelayPath   = "Edgehook-Path"
	HeaderRelayStatus = "Edgehook-Status"
)

// adminResponses is the admin's allow_responses: one reply per request received,
// within a minute.
var adminResponses = server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}

// InboxPrefix is component c's own inbox prefix. Each component's connection uses it
// (nats.CustomInboxPrefix) and may subscribe below it only, so no component can read
// the replies another one gets (a worker's pulled events, for one).
func InboxPrefix(c Component) string { return "_INBOX_" + string(c) }

// Site is where a NATS server of the mesh runs, which decides what its users may do.
// The zero value is the hub (or the single server of `edgehook up`).
type Site struct {
	// Edge is the edge's name (see ValidateEdgeName); empty for the hub.
	Edge string
}

// HubSite is the hub, or the single server of `edgehook up`.
var HubSite = Site{}

// EdgeSite is the edge node called name.
func EdgeSite(name string) Site { return Site{Edge: name} }

// IsEdge reports whether s is an edge.
func (s Site) IsEdge() bool { return s.Edge != "" }

// Components lists the components that connect to a server at s: every one at the
// hub, only the gateway at an edge.
func (s Site) Components() []Component {
	if s.IsEdge() {
		return []Component{Gateway}
	}
	return Components
}

func kvStream(bucket string) string { return "KV_" + bucket }

// kvRead is what reading a bucket with Get (direct get) takes, through api (the local
// "$JS.API" or another domain's "$JS.<domain>.API").
func kvRead(api, bucket string) []string {
	return []string{
		api + ".STREAM.INFO." + kvStream(bucket),
		api + ".DIRECT.GET." + kvStream(bucket) + ".>",
		api + ".STREAM.MSG.GET." + kvStream(bucket),
	}
}

// kvWatch is what watching a local bucket takes (an ordered push consumer with flow
// control).
func kvWatch(bucket string) []string { return kvWatchAt(localAPI, bucket) }

// kvWatchAt is what watching bucket through api (the local "$JS.API" or another
// domain's) takes: the consumer is created there, and its flow-control replies go
// back the way its messages came.
func kvWatchAt(api, bucket string) []string {
	return []string{
		api + ".CONSUMER.CREATE." + kvStream(bucket) + ".>",
		api + ".CONSUMER.DELETE." + kvStream(bucket) + ".>",
		"$JS.FC." + kvStream(bucket) + ".>",
		"$JS.FC.*.*." + kvStream(bucket) + ".>", // v2: $JS.FC.<domain>.<account hash>.<stream>...
	}
}

// acks is what acking the messages of consumer on stream takes, in the v1 ack subject
// format and in the v2 one (nats-server's js_ack_fc_v2:
// $JS.ACK.<domain>.<account hash>.<stream>...).
func acks(stream, consumer string) []string {
	return []string{
		"$JS.ACK." + stream + "." + consumer + ".>",
		"$JS.ACK.*.*." + stream + "." + consumer + ".>",
	}
}

// kvWrite is what writing a bucket takes.
func kvWrite(bucket string) []string { return []string{"$KV." + bucket + ".>"} }

// localAPI is the JetStream API of the server a client is connected to.
const localAPI = "$JS.API"

// DomainAPI is the JetStream API prefix of domain: requests there cross leaf links to
// the servers of that domain.
func DomainAPI(domain string) string { return "$JS." + domain + ".API" }

// Permissions returns the NATS permissions of component c on a server at site: exactly
// what it needs, so a compromised component cannot reach another's data. Every
// component may call $JS.API.INFO and receive replies below its own InboxPrefix.
func Permissions(c Component, site Site) *server.Permissions {
	pub := []string{localAPI + ".INFO"}
	sub := []string{InboxPrefix(c) + ".>"}
	switch {
	case c == Gateway && site.IsEdge():
		// At an edge: publish events into the edge's own stream and record them as
		// queued in the edge's own bucket (both local, so ingest needs no WAN); read
		// and watch the local identity mirror; read the hub's statuses and attempt
		// logs and publish replay requests (both need the hub); see the hub's
		// sourcing of this edge for the link metrics. For the portal: watch the
		// hub's statuses (its events index) and read the hub's PARKED stream info
		// (its breaker state). No Vault, no EVENTS, DLQ or PARKED reads, no identity
		// writes.
		hub := DomainAPI(HubDomain)
		pub = append(pub, EdgeSubjectPrefix(site.Edge)+"*", ReplaySubjectPrefix+"*", AdminTenantSubject)
		pub = append(pub, kvRead(localAPI, BucketIdentity)...)
		pub = append(pub, kvWatch(BucketIdentity)...)
		pub = append(pub, kvRead(localAPI, EdgeQueuedBucket(site.Edge))...)
		pub = append(pub, kvWrite(EdgeQueuedBucket(site.Edge))...)
		pub = append(pub, kvRead(hub, BucketStatus)...)
		pub = append(pub, kvWatchAt(hub, BucketStatus)...)
		pub = append(pub,
			localAPI+".STREAM.INFO."+EdgeStream(site.Edge),
			hub+".INFO",
			hub+".STREAM.INFO."+StreamEvents,
			hub+".STREAM.INFO."+StreamParked,
		)
	case site.IsEdge():
		return denyAll()
	case c == Gateway:
		// Read identity (watch + direct reads), publish events and replay requests,
		// record "queued" and read statuses and attempt logs, relay tenants' endpoint
		// and key requests to the admin API. For the portal: watch statuses (its
		// events index) and see how many of a tenant's events are parked (stream info
		// of PARKED, never its messages). No Vault, no EVENTS, DLQ or PARKED reads, no
		// identity writes.
		pub = append(pub, EventsSubjectPrefix+"*", ReplaySubjectPrefix+"*", AdminTenantSubject)
		pub = append(pub, kvRead(localAPI, BucketIdentity)...)
		pub = append(pub, kvWatch(BucketIdentity)...)
		pub = append(pub, kvRead(localAPI, BucketStatus)...)
		pub = append(pub, kvWrite(BucketStatus)...)
		pub = append(pub, kvWatch(BucketStatus)...)
		pub = append(pub, localAPI+".STREAM.INFO."+StreamParked)
	case c == Admin:
		// Read, write and list identity, announce config changes, answer
		// relayed tenant requests (replies through allow_responses only). For the
		// operator console: read DLQ (stream info, messages by sequence) and publish
		// replay requests, as the tenant API does; look up EVENTS (its cluster and
		// sources: the mesh; its last sequence: the rates) and the delivery and DLQ
		// consumers (backlogs). A dead letter holds its event's payload, so the admin
		// sees the payloads of dead-lettered events; it reads no message of EVENTS,
		// no statuses, and has no consumers of its own on EVENTS or DLQ, no acks, no
		// deletes.
		pub = append(pub, kvRead(localAPI, BucketIdentity)...)
		pub = append(pub, kvWrite(BucketIdentity)...)
		pub = append(pub, ConfigChangedPrefix+"*", ReplaySubjectPrefix+"*",
			localAPI+".DIRECT.GET."+kvStream(BucketIdentity), // batched reads: the tenant list
			localAPI+".STREAM.INFO."+StreamDLQ,
			localAPI+".STREAM.MSG.GET."+StreamDLQ,
			localAPI+".STREAM.INFO."+StreamEvents,
			localAPI+".CONSUMER.INFO."+StreamEvents+"."+ConsumerDeliver,
			localAPI+".CONSUMER.INFO."+StreamDLQ+"."+ConsumerDLQ,
		)
		sub = append(sub, AdminTenantSubject)
		resp := adminResponses
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
			Response:  &resp,
		}
	case c == Worker:
		// Consume the delivery consumer and ack; write statuses; park events that wait
		// long (parked.* on PARKED), read the parked copies back by subject and
		// re-inject them (events.*).
		pub = append(pub,
			localAPI+".CONSUMER.INFO."+StreamEvents+"."+ConsumerDeliver,
			localAPI+".CONSUMER.MSG.NEXT."+StreamEvents+"."+ConsumerDeliver,
			localAPI+".STREAM.INFO."+StreamParked,
			localAPI+".DIRECT.GET."+StreamParked,
			ParkedSubjectPrefix+"*.*.*",
			EventsSubjectPrefix+"*",
		)
		pub = append(pub, acks(StreamEvents, ConsumerDeliver)...)
		pub = append(pub, kvRead(localAPI, BucketStatus)...)
		pub = append(pub, kvWrite(BucketStatus)...)
		sub = append(sub, ConfigChangedPrefix+"*")
	case c == Receiver:
		pub = append(pub, ReceivedSubjectPrefix+"*")
		sub = append(sub, ConfigChangedPrefix+"*")
	case c == DLQ:
		// Consume the DLQ consumer (advisories, replay requests) and ack; get events
		// from EVENTS by sequence; read and write dead letters on DLQ; read and write
		// statuses; publish replayed events. Nothing else: no identity, no Vault, no
		// consumers of its own, no webhooks.
		pub = append(pub,
			localAPI+".CONSUMER.INFO."+StreamDLQ+"."+ConsumerDLQ,
			localAPI+".CONSUMER.MSG.NEXT."+StreamDLQ+"."+ConsumerDLQ,
			localAPI+".STREAM.INFO."+StreamEvents,
			localAPI+".STREAM.MSG.GET."+StreamEvents,
			localAPI+".STREAM.INFO."+StreamDLQ,
			localAPI+".STREAM.MSG.GET."+StreamDLQ,
			DeadLetterSubjectPrefix+"*.*",
			EventsSubjectPrefix+"*",
		)
		pub = append(pub, acks(StreamDLQ, ConsumerDLQ)...)
		pub = append(pub, kvRead(localAPI, BucketStatus)...)
		pub = append(pub, kvWrite(BucketStatus)...)
	default:
		return denyAll()
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

func denyAll() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}},
		Subscribe: &server.SubjectPermission{Deny: []string{">"}},
	}
}
