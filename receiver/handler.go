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
			if n, ok := s.logs.allow(reasonBodyTooLarge, time.Now()); ok {
				s.log.Info("webhook rejected", "reason", reasonBodyTooLarge, "suppressed", n)
			}
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
// RECEIVED and answers 204 once JetStream has acked it. Everything that costs nothing
// is checked first (precheck); only then is the tenant's configuration looked up,
// within the limit on reads for tenants the cache does not hold, and the signature
// computed.
func (s *Server) receive(ctx *fasthttp.RequestCtx, tenant []byte) {
	now := time.Now()
	h := &ctx.Request.Header
	id, ts, sig := h.Peek(webhook.HeaderID), h.Peek(webhook.HeaderTimestamp), h.Peek(webhook.HeaderSignature)
	body := ctx.PostBody()
	if answer, reason, ok := s.precheck(tenant, id, ts, sig, len(body), now); !ok {
		s.reject(ctx, answer, reason, tenant, now)
		return
	}

	tenantID := string(tenant)
	secrets, known, err := s.secrets(tenantID, now)
	switch {
	case errors.Is(err, vault.ErrReadLimited):
		// The same answer whether the tenant exists or not: neither is in the cache.
		s.reject(ctx, s.errs.throttled, reasonThrottled, tenant, now)
		return
	case err != nil:
		s.metrics.rejected[reasonConfigUnavailable].Inc()
		if n, ok := s.logs.allow(reasonConfigUnavailable, now); ok {
			s.log.Warn("webhook config unavailable", "tenant", tenantID, "error", err, "suppressed", n)
		}
		writeError(ctx, s.errs.configUnavailable)
		return
	}

	// The views below live only for this call; Verify keeps none of them.
	key := tenantID
	if !known {
		key = "" // every unknown tenant shares the decoy's Signer
	}
	vc := s.verifiers.Get().(*verifierCache)
	err = vc.get(key, secrets).Verify(view(id), view(ts), view(sig), body, now, s.cfg.Tolerance)
	s.verifiers.Put(vc)
	if err != nil {
		s.reject(ctx, s.errs.badSignature, reasonUnauthorized, tenant, now)
		return
	}

	dup, err := s.publish(tenantID, id, ts, h.ContentType(), body, now)
	if err != nil {
		if n, ok := s.logs.allow(logPublishFail, now); ok {
			s.log.Warn("webhook not stored: JetStream unavailable", "tenant", tenantID, "event", string(id), "error", err, "suppressed", n)
		}
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

// reject answers a webhook that was not verified, counts it by reason and logs it,
// at most once per reason per Config.RejectLogInterval, with how many were held back
// since. The line names the tenant if its id is well formed and never carries what
// the request's headers said.
func (s *Server) reject(ctx *fasthttp.RequestCtx, answer apiError, reason string, tenant []byte, now time.Time) {
	s.metrics.rejected[reason].Inc()
	if n, ok := s.logs.allow(reason, now); ok {
		s.log.Info("webhook rejected", "reason", reason, "tenant", loggable(string(tenant)), "suppressed", n)
	}
	writeError(ctx, answer)
}

// flushLogs logs the rejections and failures held back since their last line.
func (s *Server) flushLogs() {
	s.logs.drain(func(kind string, n int64) {
		s.log.Info("webhooks rejected or failed and not logged", "reason", kind, "suppressed", n)
	})
}

// secrets returns the secrets to verify tenantID's webhooks with at now. For a tenant
// without configuration it returns the decoy and known=false, so the caller answers
// exactly as for a wrong signature. When the tenant is not cached and the read limit
// is reached, the error is vault.ErrReadLimited; any other error is a failure to read
// the configuration.
func (s *Server) secrets(tenantID string, now time.Time) (secrets []webhook.Secret, known bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConfigTimeout)
	defer cancel()
	cfg, err := s.configs.WebhookConfigLimited(ctx, tenantID, s.allowRead)
	known = true
	switch {
	case errors.Is(err, vault.ErrNotFound):
		// The decoy takes the same steps as a real configuration from here on.
		cfg, known = s.decoy, false
	case err != nil:
		return nil, false, err
	}
	return cfg.ActiveSecrets(now), known, nil
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
