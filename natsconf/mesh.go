package natsconf

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// Credentials maps NATS user names to their plain passwords.
type Credentials map[string]string

// HubClusterName is the cluster name of the hub's nodes.
const HubClusterName = "edgehook-hub"

// HubNode places one node of the hub cluster.
type HubNode struct {
	// Host is the address the node listens on and its peers dial.
	Host string
	// The node's client, cluster (routes), leaf and monitoring ports.
	ClientPort, ClusterPort, LeafPort, MonitorPort int
}

// HubLayout places the nodes of the hub cluster.
type HubLayout struct {
	Nodes []HubNode
	// StoreDir holds each node's JetStream store in StoreDir/<node name>.
	StoreDir string
}

// NodeName is the server name of hub node i (1-based).
func NodeName(i int) string { return "hub-" + strconv.Itoa(i) }

// HubCredentialNames lists the users a hub's configs need passwords for.
func HubCredentialNames() []string {
	names := make([]string, 0, len(Components)+4)
	for _, c := range HubSite.Components() {
		names = append(names, string(c))
	}
	return append(names, OperatorUser, SystemUser, LeafUser, RouteUser)
}

// EdgeCredentialNames lists the users an edge's config needs passwords for (the leaf
// password is the hub's).
func EdgeCredentialNames() []string {
	names := []string{}
	for _, c := range EdgeSite("x").Components() {
		names = append(names, string(c))
	}
	return append(names, OperatorUser, SystemUser, LeafUser)
}

// Validate reports the first setting that cannot work, naming it.
func (h HubLayout) Validate() error {
	if len(h.Nodes) == 0 {
		return fmt.Errorf("hub needs at least one node")
	}
	if h.StoreDir == "" {
		return fmt.Errorf("hub needs a store directory")
	}
	used := map[string]string{}
	for i, n := range h.Nodes {
		if n.Host == "" {
			return fmt.Errorf("hub node %d: host is empty", i+1)
		}
		for _, port := range []struct {
			what string
			p    int
		}{{"client", n.ClientPort}, {"cluster", n.ClusterPort}, {"leaf", n.LeafPort}, {"monitor", n.MonitorPort}} {
			what, p := port.what, port.p
			if p < 1 || p > 65535 {
				return fmt.Errorf("hub node %d: %s port %d out of range", i+1, what, p)
			}
			addr := hostPort(n.Host, p)
			if other, dup := used[addr]; dup {
				return fmt.Errorf("hub node %d: %s port %s is also %s (nodes on one host need different ports)", i+1, what, addr, other)
			}
			used[addr] = fmt.Sprintf("node %d's %s port", i+1, what)
		}
	}
	return nil
}

// Servers returns the spec of every hub node, with the passwords in creds (which must
// hold every name of HubCredentialNames).
func (h HubLayout) Servers(creds Credentials) ([]ServerSpec, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("natsconf: %w", err)
	}
	if err := creds.has(HubCredentialNames()); err != nil {
		return nil, err
	}
	routes := make([]string, len(h.Nodes))
	for i, n := range h.Nodes {
		routes[i] = hostPort(n.Host, n.ClusterPort)
	}
	specs := make([]ServerSpec, len(h.Nodes))
	for i, n := range h.Nodes {
		name := NodeName(i + 1)
		specs[i] = ServerSpec{
			Name:           name,
			Host:           n.Host,
			Port:           n.ClientPort,
			MonitorPort:    n.MonitorPort,
			StoreDir:       filepath.Join(h.StoreDir, name),
			Domain:         HubDomain,
			Users:          siteUsers(HubSite, creds),
			SystemPassword: creds[SystemUser],
			Cluster: &ClusterSpec{
				Name: HubClusterName, Host: n.Host, Port: n.ClusterPort,
				Routes: routes, Password: creds[RouteUser],
			},
			LeafListen: &LeafListenSpec{Host: n.Host, Port: n.LeafPort, Password: creds[LeafUser]},
		}
	}
	return specs, nil
}

// EdgeLayout places one edge node.
type EdgeLayout struct {
	// Name is the edge's name (see ValidateEdgeName); its server is edge-<name>.
	Name string
	// Host, ClientPort and MonitorPort are where its gateway connects and its
	// monitoring listens.
	Host                    string
	ClientPort, MonitorPort int
	// HubURLs are the hub nodes' leaf listeners (nats-leaf://host:port).
	HubURLs []string
	// StoreDir is its JetStream store.
	StoreDir string
}

// Server returns the spec of the edge node, with the passwords in creds (which must
// hold every name of EdgeCredentialNames; the leaf password must be the hub's).
func (e EdgeLayout) Server(creds Credentials) (ServerSpec, error) {
	if err := ValidateEdgeName(e.Name); err != nil {
		return ServerSpec{}, fmt.Errorf("natsconf: %w", err)
	}
	if len(e.HubURLs) == 0 {
		return ServerSpec{}, fmt.Errorf("natsconf: edge %s needs the hub's leaf URL", e.Name)
	}
	if err := creds.has(EdgeCredentialNames()); err != nil {
		return ServerSpec{}, err
	}
	site := EdgeSite(e.Name)
	return ServerSpec{
		Name:           EdgeDomain(e.Name),
		Host:           e.Host,
		Port:           e.ClientPort,
		MonitorPort:    e.MonitorPort,
		StoreDir:       e.StoreDir,
		Domain:         EdgeDomain(e.Name),
		Users:          siteUsers(site, creds),
		SystemPassword: creds[SystemUser],
		LeafRemote:     &LeafRemoteSpec{URLs: e.HubURLs, Password: creds[LeafUser]},
	}, nil
}

// SingleServer is the spec of the one server of `edgehook up`: every component's user
// and the operator's, no domain, no links.
func SingleServer(host string, port int, storeDir string, creds Credentials) (ServerSpec, error) {
	names := []string{OperatorUser}
	for _, c := range Components {
		names = append(names, string(c))
	}
	if err := creds.has(names); err != nil {
		return ServerSpec{}, err
	}
	return ServerSpec{
		Name: "edgehook", Host: host, Port: port, StoreDir: storeDir,
		Users: siteUsers(HubSite, creds), SystemPassword: creds[SystemUser],
	}, nil
}

// siteUsers returns the users of site's components and the operator.
func siteUsers(site Site, creds Credentials) []User {
	users := []User{{Name: OperatorUser, Password: creds[OperatorUser]}}
	for _, c := range site.Components() {
		users = append(users, User{Name: string(c), Password: creds[string(c)], Permissions: Permissions(c, site)})
	}
	return users
}

func (c Credentials) has(names []string) error {
	for _, n := range names {
		if c[n] == "" {
			return fmt.Errorf("natsconf: no password for NATS user %s", n)
		}
	}
	return nil
}
