package gateway

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
)

// Route patterns of a tenant's own endpoint and keys, which the gateway relays to the
// admin API (it may neither write identity nor hold a Vault token).
const (
	patTenantRotateSecret = "/v1/tenant/rotate-secret"
	patTenantKeys         = "/v1/tenant/keys"
	patTenantKey          = "/v1/tenant/keys/{id}"
	patTenantRotateKey    = "/v1/tenant/keys/{id}/rotate"
)

// relayedHeaders are the headers of the admin API's answer the client gets.
var relayedHeaders = []string{fasthttp.HeaderContentType, fasthttp.HeaderRetryAfter, fasthttp.HeaderWWWAuthenticate, fasthttp.HeaderAllow}

// errAdminUnavailable answers a relayed request no admin API answered in time (none
// running, or, at an edge, the link to the hub down).
var errAdminUnavailable = newAPIError(503, CodeUnavailable, "the admin API is unavailable; retry later")

// ownTenant is the answer to GET /v1/tenant while no admin API answers: the tenant's
// identity record, which the gateway's view holds, without the target URL.
type ownTenant struct {
	TenantID  string    `json:"tenantId"`
	Status    string    `json:"status"`
	Plan      string    `json:"plan"`
	CreatedAt time.Time `json:"createdAt"`
}

// relay serves a tenant's own endpoint and key requests by relaying them to the admin
// API over NATS (natsconf.AdminTenantSubject), which authenticates the key itself and
// answers. The gateway only refuses, from memory, what the admin API would refuse
// anyway (no key, an unknown key), so junk costs no round trip. While no admin API
// answers (none runs, or an edge's link is down) GET /v1/tenant shows the identity
// record from the gateway's view and everything else is 503.
func (s *Server) relay(ctx *fasthttp.RequestCtx, _ string) error {
	t, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	reply, err := s.relayToAdmin(string(ctx.Method()), string(ctx.Path()), string(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)), ctx.PostBody())
	switch {
	case errors.Is(err, errAdminUnavailable) && ctx.IsGet() && string(ctx.Path()) == patTenant:
		// The identity record is the gateway's own to show; the target URL is not.
		writeJSON(ctx, fasthttp.StatusOK, ownTenant{TenantID: t.TenantID, Status: t.Status, Plan: t.Plan, CreatedAt: t.CreatedAt})
		return nil
	case err != nil:
		return err
	}
	ctx.ResetBody()
	ctx.SetStatusCode(reply.code)
	for _, h := range relayedHeaders {
		if v := reply.header.Get(h); v != "" {
			ctx.Response.Header.Set(h, v)
		}
	}
	ctx.SetBody(reply.body)
	return nil
}

// adminAnswer is the admin API's answer to a relayed request.
type adminAnswer struct {
	code   int
	header nats.Header
	body   []byte
}

// relayToAdmin sends one tenant request (method, path, the tenant's Authorization
// header, body) to the admin API over NATS and returns its answer: the one way the
// JSON API and the portal reach it. errAdminUnavailable when no admin API answered
// within Config.AdminTimeout.
func (s *Server) relayToAdmin(method, path, authorization string, body []byte) (adminAnswer, error) {
	m := nats.NewMsg(natsconf.AdminTenantSubject)
	m.Header.Set(natsconf.HeaderRelayMethod, method)
	m.Header.Set(natsconf.HeaderRelayPath, path)
	m.Header.Set(fasthttp.HeaderAuthorization, authorization)
	m.Data = body
	rctx, cancel := context.WithTimeout(context.Background(), s.cfg.AdminTimeout)
	defer cancel()
	reply, err := s.deps.JS.Conn().RequestMsgWithContext(rctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		s.log.Warn("relayed tenant request not answered", "path", path, "error", err)
		return adminAnswer{}, errAdminUnavailable
	case err != nil:
		return adminAnswer{}, &unavailableError{what: "admin API", err: err}
	}
	code, err := strconv.Atoi(reply.Header.Get(natsconf.HeaderRelayStatus))
	if err != nil || code < 100 || code > 599 {
		s.log.Error("relayed tenant request: answer without a status", "path", path)
		return adminAnswer{}, newAPIError(502, CodeUnavailable, "the admin API gave no usable answer; retry later")
	}
	return adminAnswer{code: code, header: reply.Header, body: reply.Data}, nil
}
