package bustest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a NATS cluster of embedded servers with JetStream, routed to
// each other on loopback. Nodes can be stopped and restarted (same ports,
// same store) to test node loss.
type Cluster struct {
	t       testing.TB
	opts    []*server.Options
	Servers []*server.Server
}

// NewCluster starts n JetStream servers in one cluster and waits until
// JetStream has a meta leader. With n == 1 it is a single standalone
// server that can be stopped and restarted on its store. Each option
// adjusts every node's options before it starts (JetStreamMaxStore, for
// instance). Stopped when the test ends.
func NewCluster(t testing.TB, n int, opts ...func(*server.Options)) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	clientPorts := freePorts(t, n)
	routePorts := freePorts(t, n)
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	for i := 0; i < n; i++ {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "feedmon-test",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: routes,
		}
		if n == 1 {
			o.Cluster, o.Routes = server.ClusterOpts{}, nil
		}
		for _, f := range opts {
			f(o)
		}
		c.opts = append(c.opts, o)
		c.Servers = append(c.Servers, nil)
	}
	for i := range c.opts {
		c.Start(i)
	}
	c.WaitReady()
	t.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	return c
}

// URLs is the comma-separated client URL list of every node.
func (c *Cluster) URLs() string {
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	return strings.Join(urls, ",")
}

// Start starts (or restarts) node i with its original ports and store.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("bustest: node %d: %v", i, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		c.t.Fatalf("bustest: node %d did not start", i)
	}
	c.Servers[i] = s
}

// Stop shuts node i down, as a crash of that machine would.
func (c *Cluster) Stop(i int) {
	if s := c.Servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// WaitReady waits until every running node sees a JetStream meta leader.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	Eventually(c.t, 60*time.Second, func() bool {
		for _, s := range c.Servers {
			if s == nil {
				continue
			}
			if len(c.opts) == 1 {
				if !s.JetStreamEnabled() {
					return false
				}
				continue
			}
			if !s.JetStreamIsClustered() || !s.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	}, "cluster JetStream not ready")
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// NewServerFromConfig starts one server from a nats-server config file
// (accounts, users, JetStream limits), on a random loopback port with its
// store in a temporary directory, and returns its client URL. Stopped when
// the test ends.
func NewServerFromConfig(t testing.TB, path string) string {
	t.Helper()
	o, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("bustest: %s: %v", path, err)
	}
	o.Host, o.Port = "127.0.0.1", -1
	o.StoreDir = t.TempDir()
	o.NoSigs, o.NoLog = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("bustest: %s: %v", path, err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		t.Fatalf("bustest: server from %s did not start", path)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}
