package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/edgehook/edgehook/natsconf"
	"github.com/edgehook/edgehook/natsconf/natsproc"
)

// The layout of `edgehook mesh`: what listens where on 127.0.0.1, and the files in its
// directory. Every port is a fixed offset from --base-port, so a second mesh (or a test)
// moves the whole range at once.

// meshDefaultBasePort is the first port of the mesh's range (it uses 14000 to 14093).
const meshDefaultBasePort = 14000

// meshHubNodes is the size of the hub cluster.
const meshHubNodes = 3

// meshEdgeNames are the mesh's edges, in order.
func meshEdgeNames() []string { return []string{"a", "b"} }

// meshPortPlan places everything of the mesh on 127.0.0.1, at offsets from base. Hub
// node i and edge e are counted from 0.
type meshPortPlan struct{ base int }

// meshPortSpan is how many ports the plan covers, from base.
const meshPortSpan = 94

func (p meshPortPlan) control() int          { return p.base }
func (p meshPortPlan) admin() int            { return p.base + 1 }
func (p meshPortPlan) receiver() int         { return p.base + 2 }
func (p meshPortPlan) gateway(e int) int     { return p.base + 10 + e }
func (p meshPortPlan) hubClient(i int) int   { return p.base + 21 + i }
func (p meshPortPlan) hubCluster(i int) int  { return p.base + 31 + i }
func (p meshPortPlan) hubLeaf(i int) int     { return p.base + 41 + i }
func (p meshPortPlan) hubMonitor(i int) int  { return p.base + 51 + i }
func (p meshPortPlan) edgeClient(e int) int  { return p.base + 61 + e }
func (p meshPortPlan) edgeMonitor(e int) int { return p.base + 71 + e }

// linkProxy is the port of edge e's proxy to hub node i's leaf listener: edge e's leaf
// link dials these, never the hub directly.
func (p meshPortPlan) linkProxy(e, i int) int { return p.base + 81 + 10*e + i }

// meshAddr is 127.0.0.1:port.
func meshAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// validate checks that the whole range fits below 65536 and above the privileged ports.
func (p meshPortPlan) validate() error {
	if p.base < 1024 || p.base+meshPortSpan-1 > 65535 {
		return fmt.Errorf("--base-port %d: the mesh uses %d ports from it, so it must be 1024 to %d", p.base, meshPortSpan, 65535-meshPortSpan+1)
	}
	return nil
}

// meshPort is one port of the plan and what listens there.
type meshPort struct {
	port int
	what string
}

// all lists every port the mesh listens on.
func (p meshPortPlan) all() []meshPort {
	ports := []meshPort{{p.control(), "link control"}, {p.admin(), "admin API"}, {p.receiver(), "receiver"}}
	for e, name := range meshEdgeNames() {
		ports = append(ports, meshPort{p.gateway(e), "gateway of edge " + name})
	}
	for i := range meshHubNodes {
		node := natsconf.NodeName(i + 1)
		ports = append(ports,
			meshPort{p.hubClient(i), node + " client"}, meshPort{p.hubCluster(i), node + " cluster"},
			meshPort{p.hubLeaf(i), node + " leaf"}, meshPort{p.hubMonitor(i), node + " monitor"})
	}
	for e, name := range meshEdgeNames() {
		server := natsconf.EdgeDomain(name)
		ports = append(ports, meshPort{p.edgeClient(e), server + " client"}, meshPort{p.edgeMonitor(e), server + " monitor"})
		for i := range meshHubNodes {
			ports = append(ports, meshPort{p.linkProxy(e, i), fmt.Sprintf("edge %s's link proxy to %s", name, natsconf.NodeName(i+1))})
		}
	}
	return ports
}

// checkFree returns an error naming the first port of the plan something else listens
// on, and the flag that moves the range.
func (p meshPortPlan) checkFree() error {
	for _, mp := range p.all() {
		ln, err := net.Listen("tcp", meshAddr(mp.port))
		if err != nil {
			return fmt.Errorf("port %d (%s) on 127.0.0.1 is in use: start the mesh on another range with --base-port (this one is %d to %d): %w",
				mp.port, mp.what, p.base, p.base+meshPortSpan-1, err)
		}
		ln.Close()
	}
	return nil
}

// meshFindNATSServer returns the nats-server binary: explicit if set, else nats-server
// in getenv's PATH (the Makefile puts bin/ first), else beside the running executable.
func meshFindNATSServer(explicit string, getenv func(string) string) (string, error) {
	if explicit != "" {
		if !natsproc.IsExecutable(explicit) {
			return "", usageError{fmt.Errorf("EDGEHOOK_NATS_SERVER=%s is not an executable file (run `make tools` to install bin/nats-server)", explicit)}
		}
		return filepath.Abs(explicit)
	}
	for _, dir := range filepath.SplitList(getenv("PATH")) {
		if dir == "" {
			continue
		}
		if bin := filepath.Join(dir, "nats-server"); natsproc.IsExecutable(bin) {
			return filepath.Abs(bin)
		}
	}
	if exe, err := os.Executable(); err == nil {
		if bin := filepath.Join(filepath.Dir(exe), "nats-server"); natsproc.IsExecutable(bin) {
			return bin, nil
		}
	}
	return "", errors.New("nats-server not found in PATH or beside the edgehook binary: run `make tools` (it installs the pinned bin/nats-server), or set EDGEHOOK_NATS_SERVER")
}

// meshSite is one site of the mesh on disk: the hub or an edge, with its directory,
// its servers' specs as written and its users' passwords.
type meshSite struct {
	dir   string
	specs []natsconf.ServerSpec
	creds natsconf.Credentials
}

// meshNoEnv hides the EDGEHOOK_NATS_PASSWORD_<USER> variables from the mesh's configs:
// its passwords are always the files in its directory, which the demo reads.
func meshNoEnv(string) string { return "" }

// meshWriteConfigs writes the configs of the hub and of every edge into dir/hub and
// dir/edge-<name> with the code of `setup nats-config` (natsconf's layouts, bcrypt,
// passwords in 0600 files kept across runs). Each edge gets the hub's leaf password, as
// an operator copies it. It says on out what it wrote.
func meshWriteConfigs(dir string, p meshPortPlan, out io.Writer) (meshSite, map[string]meshSite, error) {
	hub := meshSite{dir: filepath.Join(dir, "hub")}
	ho := natsConfigOptions{
		role: "hub", out: hub.dir, host: "127.0.0.1", nodes: meshHubNodes, stride: 1,
		clientPort: p.hubClient(0), clusterPort: p.hubCluster(0), leafPort: p.hubLeaf(0), monitor: p.hubMonitor(0),
	}
	var err error
	if hub.specs, hub.creds, err = ho.write(meshNoEnv, out); err != nil {
		return meshSite{}, nil, fmt.Errorf("mesh: hub configs: %w", err)
	}
	// The edges are written at once (bcrypt is slow), each saying what it wrote in turn.
	names := meshEdgeNames()
	sites := make([]meshSite, len(names))
	said := make([]bytes.Buffer, len(names))
	var g errgroup.Group
	for e, name := range names {
		g.Go(func() error {
			site, err := meshWriteEdge(dir, p, e, name, hub.creds[natsconf.LeafUser], &said[e])
			sites[e] = site
			return err
		})
	}
	err = g.Wait()
	for e := range names {
		_, _ = out.Write(said[e].Bytes())
	}
	if err != nil {
		return meshSite{}, nil, err
	}
	edges := map[string]meshSite{}
	for e, name := range names {
		edges[name] = sites[e]
	}
	return hub, edges, nil
}

// meshWriteEdge writes the config of edge e, called name, whose leaf link dials its
// proxies to the hub's nodes with the hub's leaf password.
func meshWriteEdge(dir string, p meshPortPlan, e int, name, leafPassword string, out io.Writer) (meshSite, error) {
	site := meshSite{dir: filepath.Join(dir, natsconf.EdgeDomain(name))}
	if err := os.MkdirAll(site.dir, 0o700); err != nil {
		return meshSite{}, fmt.Errorf("mesh: %w", err)
	}
	if err := writePrivate(passwordFile(site.dir, natsconf.LeafUser), leafPassword+"\n"); err != nil {
		return meshSite{}, fmt.Errorf("mesh: edge %s: the hub's leaf password: %w", name, err)
	}
	var urls []string
	for i := range meshHubNodes {
		urls = append(urls, "nats-leaf://"+meshAddr(p.linkProxy(e, i)))
	}
	eo := natsConfigOptions{
		role: "edge", out: site.dir, name: name, hub: strings.Join(urls, ","), host: "127.0.0.1",
		clientPort: p.edgeClient(e), monitor: p.edgeMonitor(e),
	}
	var err error
	if site.specs, site.creds, err = eo.write(meshNoEnv, out); err != nil {
		return meshSite{}, fmt.Errorf("mesh: edge %s configs: %w", name, err)
	}
	return site, nil
}
