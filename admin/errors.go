package admin

import (
	"errors"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/api"
	"github.com/edgehook/edgehook/identity"
	"github.com/edgehook/edgehook/vault"
)

// errorResponse maps any handler error to the status and body the client gets: the
// admin API's own store errors here, the rest as every edgehook API answers them.
func (s *Server) errorResponse(err error, route string) *api.Error {
	if ae := keyError(err); ae != nil {
		return ae
	}
	switch {
	case errors.Is(err, identity.ErrNotFound):
		return api.NewError(404, api.CodeNotFound, "tenant not found")
	case errors.Is(err, vault.ErrNotFound):
		return api.NewError(404, api.CodeNotFound, "webhook configuration not found")
	case errors.Is(err, identity.ErrBadPlan), errors.Is(err, identity.ErrBadStatus), errors.Is(err, identity.ErrBadTenantID):
		return api.BadRequest(strings.TrimPrefix(err.Error(), "identity: "))
	}
	return api.Response(err, s.log, route)
}

// writeError answers with err's status and JSON error body.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error, route string) {
	api.WriteError(ctx, s.errorResponse(err, route))
}
