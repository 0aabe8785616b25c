package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regclient/regclient"
	"github.com/regclient/regclient/config"
	"github.com/regclient/regclient/scheme/reg"
)

// defaultConcurrency is the number of requests in flight to one host,
// enough for a thread pool of a few dozen workers. regclient's own default
// of 3 would queue the requests of a dozen threads behind each other.
const defaultConcurrency = 32

// maxIdleConnsPerHost is how many keep-alive connections each host keeps,
// so concurrent calls reuse connections instead of opening new ones. Go's
// default of 2 would close most of them after every burst.
const maxIdleConnsPerHost = defaultConcurrency

func init() {
	// regclient clones http.DefaultTransport for each host. This runtime
	// belongs to this library alone, so changing the global is safe.
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	}
}

// liveClients and liveOperations count handles not yet freed, for the
// diagnostics that tests use to find leaks.
var (
	liveClients    atomic.Int64
	liveOperations atomic.Int64
)

// clientOptions is the JSON document that rcx_client_new receives.
type clientOptions struct {
	Hosts []hostOptions `json:"hosts"`
	// DockerConfigFile is docker's config.json to read credentials from,
	// or empty. Python resolves it, because the Go runtime's copy of the
	// environment does not follow later changes to os.environ.
	DockerConfigFile string `json:"docker_config_file"`
	DockerCerts      bool   `json:"docker_certs"`
	UserAgent        string `json:"user_agent"`
	RetryLimit       int    `json:"retry_limit"`
	// CacheBytes bounds the manifest and config cache; 0 turns it off.
	CacheBytes int64 `json:"cache_bytes"`
	// Path is Python's current PATH, where credential helpers are found.
	Path string `json:"path"`
	// AllowedRegistries and BlockPrivateNetworks set the network policy.
	AllowedRegistries    []string `json:"allowed_registries"`
	BlockPrivateNetworks bool     `json:"block_private_networks"`
}

// hostOptions are the settings for one registry host. Certificates and
// keys are PEM text; the Python layer reads files.
type hostOptions struct {
	Name              string   `json:"name"`
	TLS               string   `json:"tls"`
	CACert            string   `json:"ca_cert"`
	ClientCert        string   `json:"client_cert"`
	ClientKey         string   `json:"client_key"`
	Username          string   `json:"username"`
	Password          string   `json:"password"`
	Token             string   `json:"token"`
	Mirrors           []string `json:"mirrors"`
	Concurrency       int64    `json:"concurrency"`
	RequestsPerSecond float64  `json:"requests_per_second"`
}

// Client owns one RegClient, with its connection pools and tokens, for the
// life of a Python client. Closing it cancels the operations still running.
type Client struct {
	rc     *regclient.RegClient
	cache  *contentCache
	policy *networkPolicy

	// transportErrors holds the last failed connection per host, so a
	// call that times out while regclient retries it can report why.
	transportMu     sync.Mutex
	transportErrors map[string]transportError
	ctx             context.Context
	cancel          context.CancelFunc
	logs            logSink
	conns           connSet
}

func newClient(raw []byte) (*Client, error) {
	var opts clientOptions
	if err := json.Unmarshal(raw, &opts); err != nil {
		return nil, invalidArgument(fmt.Errorf("invalid client options: %w", err))
	}

	c := &Client{cache: newContentCache(opts.CacheBytes), policy: newNetworkPolicy(opts.AllowedRegistries, opts.BlockPrivateNetworks)}
	c.logs.minLevel.Store(pyWarning)
	// The host default comes first so hosts read from docker's config get it too.
	defaultHost := config.Host{ReqConcurrent: defaultConcurrency}
	rcOpts := []regclient.Opt{
		regclient.WithConfigHostDefault(defaultHost),
		regclient.WithSlog(slog.New(&sinkHandler{sink: &c.logs, client: c})),
		// A client without a Transport makes regclient clone the default
		// one per host, as without this option, so TLS settings still apply.
		regclient.WithRegOpts(reg.WithHTTPClient(&http.Client{CheckRedirect: checkRedirect})),
	}
	if opts.DockerConfigFile != "" {
		// NOTE: regclient runs credential helpers without a context, so a
		// helper that hangs holds the call past its timeout.
		syncPath(opts.Path)
		rcOpts = append(rcOpts, regclient.WithDockerCredsFile(opts.DockerConfigFile))
	}
	if opts.DockerCerts {
		rcOpts = append(rcOpts, regclient.WithDockerCerts())
	}
	if opts.UserAgent != "" {
		rcOpts = append(rcOpts, regclient.WithUserAgent(opts.UserAgent))
	}
	if opts.RetryLimit > 0 {
		rcOpts = append(rcOpts, regclient.WithRetryLimit(opts.RetryLimit))
	}
	for _, h := range opts.Hosts {
		host, err := h.configHost()
		if err != nil {
			return nil, err
		}
		rcOpts = append(rcOpts, regclient.WithConfigHost(*host))
	}

	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.rc = regclient.New(rcOpts...)
	liveClients.Add(1)
	return c, nil
}

type transportError struct {
	message string
	when    time.Time
}

func (c *Client) recordTransportError(rawURL, message string) {
	// A request cut off by the call's own deadline is no failure of the host.
	if strings.Contains(message, context.DeadlineExceeded.Error()) || strings.Contains(message, context.Canceled.Error()) {
		return
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	c.transportMu.Lock()
	defer c.transportMu.Unlock()
	if c.transportErrors == nil {
		c.transportErrors = map[string]transportError{}
	}
	c.transportErrors[strings.ToLower(u.Host)] = transportError{message: message, when: time.Now()}
}

// transportErrorSince returns the last failed connection to registry's
// host after since, or "".
func (c *Client) transportErrorSince(registry string, since time.Time) string {
	host := strings.ToLower(registry)
	if host == config.DockerRegistry {
		host = config.DockerRegistryDNS
	}
	c.transportMu.Lock()
	defer c.transportMu.Unlock()
	if e, ok := c.transportErrors[host]; ok && !e.when.Before(since) {
		return e.message
	}
	return ""
}

func (c *Client) close() {
	c.cancel()
	c.conns.closeAll()
	liveClients.Add(-1)
}

// syncPath updates the Go runtime's PATH, which it copied when it started,
// so credential helpers are looked up where Python would find them.
func syncPath(path string) {
	if path != "" && os.Getenv("PATH") != path {
		_ = os.Setenv("PATH", path)
	}
}

// configHost turns host options into regclient's host entry. HostNewName
// applies regclient's name rules, so "docker.io" reaches Docker Hub.
func (h hostOptions) configHost() (*config.Host, error) {
	if h.Name == "" {
		return nil, invalidArgument(fmt.Errorf("host name is empty"))
	}
	host := config.HostNewName(dockerHubName(h.Name))
	switch h.TLS {
	case "", "enabled":
		host.TLS = config.TLSEnabled
	case "disabled":
		host.TLS = config.TLSDisabled
	case "insecure":
		host.TLS = config.TLSInsecure
	default:
		return nil, invalidArgument(fmt.Errorf("invalid tls mode %q for host %s: use enabled, disabled or insecure", h.TLS, h.Name))
	}
	host.RegCert = h.CACert
	host.ClientCert = h.ClientCert
	host.ClientKey = h.ClientKey
	host.User = h.Username
	host.Pass = h.Password
	host.Token = h.Token
	for _, mirror := range h.Mirrors {
		host.Mirrors = append(host.Mirrors, dockerHubName(mirror))
	}
	host.ReqConcurrent = defaultConcurrency
	if h.Concurrency > 0 {
		host.ReqConcurrent = h.Concurrency
	}
	if h.RequestsPerSecond > 0 {
		host.ReqPerSec = h.RequestsPerSecond
	}
	return host, nil
}

// dockerHubName maps every name docker accepts for Docker Hub to the one
// regclient uses, so a Host("index.docker.io") applies to "nginx:latest".
func dockerHubName(name string) string {
	switch strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(name), "https://"), "/") {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "index.docker.io/v1":
		return config.DockerRegistry
	}
	return name
}
