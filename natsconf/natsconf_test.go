package natsconf_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natstest"
)

func TestSetupIsIdempotentAndAppliesTopology(t *testing.T) {
	srv := natstest.Start(t, func(tp *natsconf.Topology) { tp.HTTPTimeout = 3 * time.Second; tp.MaxDeliver = 4 })
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A second run over an existing deployment must succeed and change nothing.
	if err := natsconf.Setup(ctx, js, srv.Topology); err != nil {
		t.Fatalf("second setup: %v", err)
	}
	s, err := js.Stream(ctx, natsconf.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Storage != jetstream.FileStorage || info.Config.Duplicates != time.Hour || info.Config.MaxAge != 7*24*time.Hour {
		t.Errorf("EVENTS config = storage %v dup %s maxage %s", info.Config.Storage, info.Config.Duplicates, info.Config.MaxAge)
	}
	c, err := js.Consumer(ctx, natsconf.StreamEvents, natsconf.ConsumerDeliver)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Config.AckWait <= 3*time.Second {
		t.Errorf("AckWait %s does not exceed the HTTP timeout", ci.Config.AckWait)
	}
	if ci.Config.MaxDeliver != 4 || ci.Config.AckPolicy != jetstream.AckExplicitPolicy {
		t.Errorf("consumer = maxdeliver %d ack %v", ci.Config.MaxDeliver, ci.Config.AckPolicy)
	}
	for _, b := range []string{natsconf.BucketIdentity, natsconf.BucketStatus} {
		if _, err := js.KeyValue(ctx, b); err != nil {
			t.Errorf("bucket %s: %v", b, err)
		}
	}
	if _, err := js.Stream(ctx, natsconf.StreamReceived); err != nil {
		t.Errorf("stream RECEIVED: %v", err)
	}

	// A changed setting is applied to the existing consumer.
	srv.Topology.MaxDeliver = 6
	if err := natsconf.Setup(ctx, js, srv.Topology); err != nil {
		t.Fatalf("setup with new max deliver: %v", err)
	}
	ci, _ = c.Info(ctx)
	if ci.Config.MaxDeliver != 6 {
		t.Errorf("MaxDeliver after update = %d, want 6", ci.Config.MaxDeliver)
	}
}

func TestTopologyValidateNamesTheSetting(t *testing.T) {
	for name, edit := range map[string]func(*natsconf.Topology){
		"replicas":         func(tp *natsconf.Topology) { tp.Replicas = 0 },
		"retention":        func(tp *natsconf.Topology) { tp.Retention = 0 },
		"duplicate window": func(tp *natsconf.Topology) { tp.DuplicateWindow = 30 * 24 * time.Hour },
		"HTTP timeout":     func(tp *natsconf.Topology) { tp.HTTPTimeout = 0 },
		"max deliver":      func(tp *natsconf.Topology) { tp.MaxDeliver = 0 },
		"max ack pending":  func(tp *natsconf.Topology) { tp.MaxAckPending = -1 },
	} {
		tp := natsconf.DefaultTopology()
		edit(&tp)
		err := tp.Validate()
		if err == nil {
			t.Errorf("%s: invalid topology accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
	if err := natsconf.DefaultTopology().Validate(); err != nil {
		t.Errorf("default topology invalid: %v", err)
	}
}
