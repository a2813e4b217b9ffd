package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// meshLinks are the edges' leaf links, each a proxy per hub node that are cut and healed
// together, and the mesh's link control endpoint on loopback:
//
//	GET  /links              every edge's link: {"links":[{"edge","cut","proxies":[{"listen","target"}]}]}
//	POST /links/{edge}/cut   close the edge's leaf connections and refuse new ones: {"edge","cut":true}
//	POST /links/{edge}/heal  let the edge's leaf link connect again: {"edge","cut":false}
//
// plus GET /healthz, /readyz and /metrics (edgehook_mesh_link_cut{edge}).
type meshLinks struct {
	log *slog.Logger
	reg *prometheus.Registry
	cut *prometheus.GaugeVec

	mu     sync.Mutex
	edges  []string
	byEdge map[string][]*natsproc.Proxy
}

func meshNewLinks(log *slog.Logger) *meshLinks {
	l := &meshLinks{log: log, reg: newRegistry(), byEdge: map[string][]*natsproc.Proxy{}}
	l.cut = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "edgehook_mesh_link_cut",
		Help: "1 while the mesh's link control keeps the edge's leaf link cut, 0 while it lets it through.",
	}, []string{"edge"})
	l.reg.MustRegister(l.cut)
	return l
}

// add makes p one of the proxies of edge's link.
func (l *meshLinks) add(edge string, p *natsproc.Proxy) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.edges, edge) {
		l.edges = append(l.edges, edge)
		l.cut.WithLabelValues(edge).Set(0)
	}
	l.byEdge[edge] = append(l.byEdge[edge], p)
}

// setCut cuts or heals every proxy of edge's link; it returns false for an unknown edge.
func (l *meshLinks) setCut(edge string, cut bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	proxies, ok := l.byEdge[edge]
	if !ok {
		return false
	}
	for _, p := range proxies {
		if cut {
			p.Cut()
		} else {
			p.Heal()
		}
	}
	v := 0.0
	if cut {
		v = 1
		l.log.Warn("link cut: the edge's leaf link to the hub is down until healed", "edge", edge)
	} else {
		l.log.Info("link healed: the edge's leaf link may connect again", "edge", edge)
	}
	l.cut.WithLabelValues(edge).Set(v)
	return true
}

type meshLinkProxy struct {
	Listen string `json:"listen"`
	Target string `json:"target"`
}

type meshLinkState struct {
	Edge    string          `json:"edge"`
	Cut     bool            `json:"cut"`
	Proxies []meshLinkProxy `json:"proxies,omitempty"`
}

// states returns every edge's link, in order.
func (l *meshLinks) states() []meshLinkState {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]meshLinkState, 0, len(l.edges))
	for _, edge := range l.edges {
		st := meshLinkState{Edge: edge}
		for _, p := range l.byEdge[edge] {
			st.Cut = st.Cut || p.IsCut()
			st.Proxies = append(st.Proxies, meshLinkProxy{Listen: p.Addr(), Target: p.Target()})
		}
		out = append(out, st)
	}
	return out
}

// handler serves the link control endpoint.
func (l *meshLinks) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /links", func(w http.ResponseWriter, _ *http.Request) {
		meshWriteJSON(w, http.StatusOK, map[string]any{"links": l.states()})
	})
	for action, cut := range map[string]bool{"cut": true, "heal": false} {
		mux.HandleFunc("POST /links/{edge}/"+action, func(w http.ResponseWriter, r *http.Request) {
			edge := r.PathValue("edge")
			if !l.setCut(edge, cut) {
				l.mu.Lock()
				known := strings.Join(l.edges, ", ")
				l.mu.Unlock()
				meshWriteJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{
					"code": "not_found", "message": fmt.Sprintf("no edge %q: the mesh's edges are %s", edge, known),
				}})
				return
			}
			meshWriteJSON(w, http.StatusOK, meshLinkState{Edge: edge, Cut: cut})
		})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		meshWriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		meshWriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(l.reg, promhttp.HandlerOpts{}))
	return mux
}

// serve serves the link control endpoint on addr until ctx ends.
func (l *meshLinks) serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mesh: link control on %s (--base-port): %w", addr, err)
	}
	srv := &http.Server{Handler: l.handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // what is still open after 5 s is closed by Serve returning
	}()
	err = srv.Serve(ln)
	<-done
	if !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mesh: link control: %w", err)
	}
	return nil
}

// close closes every proxy, and with them the edges' leaf connections.
func (l *meshLinks) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, proxies := range l.byEdge {
		for _, p := range proxies {
			p.Close()
		}
	}
}

// meshWriteJSON answers with v as JSON.
func meshWriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// meshGetOK returns nil if GET url answers 200, otherwise an error saying what it got.
func meshGetOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
