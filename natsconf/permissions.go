package natsconf

import (
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

func kvStream(bucket string) string { return "KV_" + bucket }

// kvRead is what reading a bucket with Get (direct get) takes.
func kvRead(bucket string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + kvStream(bucket),
		"$JS.API.DIRECT.GET." + kvStream(bucket) + ".>",
		"$JS.API.STREAM.MSG.GET." + kvStream(bucket),
	}
}

// kvWatch is what watching a bucket takes (an ordered push consumer with flow control).
func kvWatch(bucket string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + kvStream(bucket) + ".>",
		"$JS.API.CONSUMER.DELETE." + kvStream(bucket) + ".>",
		"$JS.FC." + kvStream(bucket) + ".>",
	}
}

// kvWrite is what writing a bucket takes.
func kvWrite(bucket string) []string { return []string{"$KV." + bucket + ".>"} }

// Permissions returns the NATS permissions of component c: exactly what it needs, so a
// compromised component cannot reach another's data. Every component may receive
// replies on _INBOX.> and call $JS.API.INFO.
func Permissions(c Component) *server.Permissions {
	pub := []string{"$JS.API.INFO"}
	sub := []string{"_INBOX.>"}
	switch c {
	case Gateway:
		// Read identity (watch + direct reads), publish events and replay requests,
		// record "queued" and read statuses and attempt logs. No Vault, no EVENTS or
		// DLQ reads, no identity writes.
		pub = append(pub, EventsSubjectPrefix+"*", ReplaySubjectPrefix+"*")
		pub = append(pub, kvRead(BucketIdentity)...)
		pub = append(pub, kvWatch(BucketIdentity)...)
		pub = append(pub, kvRead(BucketStatus)...)
		pub = append(pub, kvWrite(BucketStatus)...)
	case Admin:
		pub = append(pub, kvRead(BucketIdentity)...)
		pub = append(pub, kvWrite(BucketIdentity)...)
		pub = append(pub, ConfigChangedPrefix+"*")
	case Worker:
		// Consume the delivery consumer and ack; write statuses. Publishes nothing else.
		pub = append(pub,
			"$JS.API.CONSUMER.INFO."+StreamEvents+"."+ConsumerDeliver,
			"$JS.API.CONSUMER.MSG.NEXT."+StreamEvents+"."+ConsumerDeliver,
			"$JS.ACK."+StreamEvents+"."+ConsumerDeliver+".>",
		)
		pub = append(pub, kvRead(BucketStatus)...)
		pub = append(pub, kvWrite(BucketStatus)...)
		sub = append(sub, ConfigChangedPrefix+"*")
	case Receiver:
		pub = append(pub, ReceivedSubjectPrefix+"*")
		sub = append(sub, ConfigChangedPrefix+"*")
	case DLQ:
		// Consume the DLQ consumer (advisories, replay requests) and ack; get events
		// from EVENTS by sequence; read and write dead letters on DLQ; read and write
		// statuses; publish replayed events. Nothing else: no identity, no Vault, no
		// consumers of its own, no webhooks.
		pub = append(pub,
			"$JS.API.CONSUMER.INFO."+StreamDLQ+"."+ConsumerDLQ,
			"$JS.API.CONSUMER.MSG.NEXT."+StreamDLQ+"."+ConsumerDLQ,
			"$JS.ACK."+StreamDLQ+"."+ConsumerDLQ+".>",
			"$JS.API.STREAM.INFO."+StreamEvents,
			"$JS.API.STREAM.MSG.GET."+StreamEvents,
			"$JS.API.STREAM.INFO."+StreamDLQ,
			"$JS.API.STREAM.MSG.GET."+StreamDLQ,
			DeadLetterSubjectPrefix+"*.*",
			EventsSubjectPrefix+"*",
		)
		pub = append(pub, kvRead(BucketStatus)...)
		pub = append(pub, kvWrite(BucketStatus)...)
	default:
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Deny: []string{">"}},
			Subscribe: &server.SubjectPermission{Deny: []string{">"}},
		}
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// Users returns one NATS user per component with its Permissions, given each
// component's password.
func Users(passwords map[Component]string) []*server.User {
	users := make([]*server.User, 0, len(passwords))
	for _, c := range Components {
		if pw, ok := passwords[c]; ok {
			users = append(users, &server.User{Username: string(c), Password: pw, Permissions: Permissions(c)})
		}
	}
	return users
}
