package admin

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/natsconf"
)

// relayConcurrency bounds the relayed requests answered at once; a request beyond it
// is answered 503 with Retry-After at once.
const relayConcurrency = 32

// relayedHeaders are the answer headers a relayed request gets back.
var relayedHeaders = []string{fasthttp.HeaderContentType, fasthttp.HeaderRetryAfter, fasthttp.HeaderWWWAuthenticate, fasthttp.HeaderAllow}

// errRelayBusy answers a relayed request beyond relayConcurrency.
var errRelayBusy = api.NewError(503, api.CodeUnavailable, "the admin API is busy; retry later")

// startRelay subscribes to the tenant requests gateways relay (natsconf.AdminTenantSubject)
// and answers each with the handlers of the tenant's own routes (s.relayed), never the
// admin routes. stop unsubscribes and waits for the requests in flight.
func (s *Server) startRelay() (stop func(), err error) {
	sem := make(chan struct{}, relayConcurrency)
	var wg sync.WaitGroup
	sub, err := s.deps.NATS.QueueSubscribe(natsconf.AdminTenantSubject, natsconf.AdminQueue, func(m *nats.Msg) {
		if m.Reply == "" {
			return // not a request: nobody waits for an answer
		}
		select {
		case sem <- struct{}{}:
		default:
			var ctx fasthttp.RequestCtx
			api.WriteError(&ctx, errRelayBusy)
			s.respond(m, &ctx)
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.answerRelayed(m)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("admin: subscribe to %s: %w", natsconf.AdminTenantSubject, err)
	}
	if err := s.deps.NATS.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("admin: subscribe to %s: %w", natsconf.AdminTenantSubject, err)
	}
	return func() {
		if err := sub.Unsubscribe(); err != nil && s.deps.NATS.IsConnected() {
			s.log.Warn("relay subscription not removed", "error", err)
		}
		wg.Wait()
	}, nil
}

// answerRelayed serves one relayed request as the admin listener would serve it on a
// tenant route, and replies with the answer.
func (s *Server) answerRelayed(m *nats.Msg) {
	var req fasthttp.Request
	req.Header.SetMethod(m.Header.Get(natsconf.HeaderRelayMethod))
	req.SetRequestURI(m.Header.Get(natsconf.HeaderRelayPath))
	if a := m.Header.Get(fasthttp.HeaderAuthorization); a != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, a)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	if len(m.Data) > s.cfg.MaxBodyBytes {
		api.WriteError(&ctx, s.tooLarge)
	} else {
		ctx.Request.SetBody(m.Data)
		s.serve(&ctx, s.relayed)
	}
	s.respond(m, &ctx)
}

// respond replies to m with the answer in ctx.
func (s *Server) respond(m *nats.Msg, ctx *fasthttp.RequestCtx) {
	reply := nats.NewMsg(m.Reply)
	reply.Header.Set(natsconf.HeaderRelayStatus, strconv.Itoa(ctx.Response.StatusCode()))
	for _, h := range relayedHeaders {
		if v := ctx.Response.Header.Peek(h); len(v) > 0 {
			reply.Header.Set(h, string(v))
		}
	}
	reply.Data = append([]byte(nil), ctx.Response.Body()...)
	if err := m.RespondMsg(reply); err != nil {
		s.log.Warn("relayed request not answered", "error", err)
	}
}
