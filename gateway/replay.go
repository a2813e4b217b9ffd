package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/status"
)

// CodeConflict is the error code of a request the resource's state does not allow
// (replaying an event that is still queued or retrying).
const CodeConflict = "conflict"

// attemptResponse is one entry of GET /v1/events/{id}/attempts.
type attemptResponse struct {
	Attempt      int       `json:"attempt"`
	Replay       int       `json:"replay"`
	At           time.Time `json:"at"`
	Outcome      string    `json:"outcome"`
	StatusCode   int       `json:"statusCode"`
	LatencyMs    float64   `json:"latencyMs"`
	Error        string    `json:"error"`
	ResponseBody string    `json:"responseBody"`
}

// attemptsResponse is the body of GET /v1/events/{id}/attempts.
type attemptsResponse struct {
	EventID  string            `json:"eventId"`
	Attempts []attemptResponse `json:"attempts"`
}

// getAttempts serves GET /v1/events/{id}/attempts: the attempt log of one of the
// caller's own events, oldest first, each with its time, outcome, status code,
// latency, error and the first 1 KiB of the endpoint's answer. Another tenant's event
// is an unknown one (404).
func (s *Server) getAttempts(ctx *fasthttp.RequestCtx, id string) error {
	t, err := s.authenticate(ctx)
	if err != nil {
		return err
	}
	sctx, cancel := s.storeCtx()
	defer cancel()
	log, err := s.deps.Status.Attempts(sctx, t.TenantID, id)
	if err != nil {
		return storeError("status store", err)
	}
	resp := attemptsResponse{EventID: id, Attempts: make([]attemptResponse, 0, len(log))}
	for _, a := range log {
		if a.TenantID != t.TenantID { // keys are per tenant; this is belt and braces
			continue
		}
		resp.Attempts = append(resp.Attempts, attemptResponse{
			Attempt: a.Attempt, Replay: a.Replay, At: a.At, Outcome: a.Outcome, StatusCode: a.StatusCode,
			LatencyMs: a.LatencyMs, Error: a.Error, ResponseBody: a.ResponseBody,
		})
	}
	writeJSON(ctx, fasthttp.StatusOK, resp)
	return nil
}

// replayResponse is the body of POST /v1/events/{id}/replay.
type replayResponse struct {
	EventID         string `json:"eventId"`
	ReplayRequested bool   `json:"replayRequested"`
}

// replayEvent serves POST /v1/events/{id}/replay: an active tenant asks for one of its
// failed or delivered events to be delivered again, with the same webhook-id and a
// fresh attempt count. The gateway cannot read events back (least privilege), so it
// queues a replay request on DLQ, answered 202 once stored; the DLQ processor
// executes it. A queued or retrying event is 409. Repeating the request before the
// event's state changes queues it once.
func (s *Server) replayEvent(ctx *fasthttp.RequestCtx, id string) error {
	t, err := s.authenticateActive(ctx)
	if err != nil {
		return err
	}
	err = s.requestReplay(t.TenantID, id)
	if errors.Is(err, errNotReplayable) {
		return newAPIError(fasthttp.StatusConflict, CodeConflict, err.Error())
	}
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusAccepted, replayResponse{EventID: id, ReplayRequested: true})
	return nil
}

// errNotReplayable is wrapped by requestReplay's error for a queued or retrying event.
var errNotReplayable = errors.New("only failed or delivered events can be replayed")

// requestReplay queues a replay request for tenantID's event id, the one way the JSON
// API and the portal ask for one: status.ErrNotFound for an unknown event (or
// another tenant's), errNotReplayable for one not failed or delivered, an
// unavailableError when the request could not be stored.
func (s *Server) requestReplay(tenantID, id string) error {
	sctx, cancel := s.storeCtx()
	defer cancel()
	rec, rev, err := s.deps.Status.Entry(sctx, tenantID, id)
	if err != nil {
		return storeError("status store", err)
	}
	if rec.Status != status.Failed && rec.Status != status.Delivered {
		return fmt.Errorf("event is %s; %w", rec.Status, errNotReplayable)
	}
	m := nats.NewMsg(natsconf.ReplaySubject(tenantID))
	m.Header.Set(natsconf.HeaderTenant, tenantID)
	m.Header.Set(natsconf.HeaderEventID, id)
	// One request per state of the event: the status record's revision names it.
	m.Header.Set(jetstream.MsgIDHeader, "replay:"+tenantID+":"+id+":"+strconv.FormatUint(rev, 10))
	if _, err := s.pub.PublishMsg(sctx, m); err != nil {
		s.log.Warn("replay request not stored", "tenant", tenantID, "event", id, "error", err)
		return &unavailableError{what: "event store", err: err}
	}
	s.log.Info("replay requested", "tenant", tenantID, "event", id, "status", rec.Status)
	return nil
}
