package receiver

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
	"github.com/edgehook/edgehook/webhook"
)

const webhooksPrefix = "/webhooks/"

// newRouter returns the handler for every route, counting each answer by route
// pattern and status code.
func (s *Server) newRouter(g prometheus.Gatherer) fasthttp.RequestHandler {
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return func(ctx *fasthttp.RequestCtx) {
		route := s.route(ctx, metricsHandler)
		s.metrics.request(route, ctx.Response.StatusCode())
	}
}

// route dispatches ctx and returns the route pattern that answered it.
func (s *Server) route(ctx *fasthttp.RequestCtx, metricsHandler fasthttp.RequestHandler) string {
	path := ctx.Path()
	if tenant, ok := bytes.CutPrefix(path, []byte(webhooksPrefix)); ok {
		if len(tenant) == 0 || bytes.IndexByte(tenant, '/') >= 0 {
			writeError(ctx, s.errs.notFound)
			return routeOther
		}
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", fasthttp.MethodPost)
			writeError(ctx, s.errs.methodNotAllowed)
			return routeWebhook
		}
		s.receive(ctx, tenant)
		return routeWebhook
	}
	var route string
	switch string(path) {
	case routeHealthz:
		route = routeHealthz
	case routeReadyz:
		route = routeReadyz
	case routeMetrics:
		route = routeMetrics
	default:
		writeError(ctx, s.errs.notFound)
		return routeOther
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		writeError(ctx, s.errs.methodNotAllowed)
		return route
	}
	switch route {
	case routeHealthz:
		ctx.SetContentType(contentTypeJSON)
		ctx.SetBodyString(`{"status":"ok"}`)
	case routeReadyz:
		if !s.js.Conn().IsConnected() || (s.ready != nil && !s.ready()) {
			writeError(ctx, s.errs.notReady)
			break
		}
		ctx.SetContentType(contentTypeJSON)
		ctx.SetBodyString(`{"status":"ready"}`)
	case routeMetrics:
		metricsHandler(ctx)
	}
	return route
}

// handleReadError answers requests fasthttp could not read, in the JSON error shape:
// 413 for an oversized body, 431 for oversized headers, 408 for a read timeout, 400
// otherwise. fasthttp closes the connection afterwards.
func (s *Server) handleReadError(ctx *fasthttp.RequestCtx, err error) {
	route := routeOther
	if bytes.HasPrefix(ctx.Path(), []byte(webhooksPrefix)) {
		route = routeWebhook
	}
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, s.errs.tooLarge)
		if route == routeWebhook {
			s.metrics.rejected[reasonBodyTooLarge].Inc()
		}
	case errors.As(err, &small):
		writeError(ctx, s.errs.headersTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		writeError(ctx, s.errs.timeout)
	default:
		writeError(ctx, s.errs.badRequest)
	}
	s.metrics.request(route, ctx.Response.StatusCode())
}

// receive verifies one webhook for tenant and, if it verifies, publishes it to
// RECEIVED and answers 204 once JetStream has acked it.
func (s *Server) receive(ctx *fasthttp.RequestCtx, tenant []byte) {
	now := time.Now()
	tenantID := string(tenant)
	secrets, known, err := s.secrets(tenantID, now)
	if err != nil {
		s.log.Warn("webhook config unavailable", "tenant", tenantID, "error", err)
		writeError(ctx, s.errs.configUnavailable)
		return
	}

	h := &ctx.Request.Header
	id, ts := h.Peek(webhook.HeaderID), h.Peek(webhook.HeaderTimestamp)
	body := ctx.PostBody()
	// The views below live only for this call; Verify keeps none of them.
	key := tenantID
	if !known {
		key = "" // every unknown tenant shares the decoy's Signer
	}
	vc := s.verifiers.Get().(*verifierCache)
	err = vc.get(key, secrets).Verify(view(id), view(ts), view(h.Peek(webhook.HeaderSignature)), body, now, s.cfg.Tolerance)
	s.verifiers.Put(vc)
	if err != nil {
		answer, reason := s.errs.verifyError(err, known)
		s.metrics.rejected[reason].Inc()
		s.log.Info("webhook rejected", "tenant", loggable(tenantID), "event", string(id), "reason", reason)
		writeError(ctx, answer)
		return
	}

	dup, err := s.publish(tenantID, id, ts, h.ContentType(), body, now)
	if err != nil {
		s.log.Warn("webhook not stored: JetStream unavailable", "tenant", tenantID, "event", string(id), "error", err)
		writeError(ctx, s.errs.publishUnavailable)
		return
	}
	s.metrics.verified.Inc()
	if dup {
		s.metrics.duplicates.Inc()
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("webhook verified", "tenant", tenantID, "event", string(id), "duplicate", dup)
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// secrets returns the secrets to verify tenantID's webhooks with at now. For a tenant
// id that is malformed or has no configuration it returns the decoy and known=false,
// so the caller answers exactly as for a wrong signature. Only a failure to read the
// configuration is an error.
func (s *Server) secrets(tenantID string, now time.Time) (secrets []webhook.Secret, known bool, err error) {
	if !identity.ValidTenantID(tenantID) {
		return s.decoy, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConfigTimeout)
	defer cancel()
	cfg, err := s.configs.WebhookConfig(ctx, tenantID)
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return s.decoy, false, nil
	case err != nil:
		return nil, false, err
	}
	return cfg.ActiveSecrets(now), true, nil
}

// loggable returns tenantID if it is well-formed, so a malformed one from the URL
// never reaches the logs verbatim.
func loggable(tenantID string) string {
	if identity.ValidTenantID(tenantID) {
		return tenantID
	}
	return "(malformed)"
}

// view returns b as a string without copying. The string must not outlive b, which
// for request data means the handler call.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
