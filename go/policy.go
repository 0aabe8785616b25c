package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// networkPolicy limits where a client's requests may go. User-supplied image
// references must not reach internal services of a multi-tenant backend.
type networkPolicy struct {
	// allowed lists registry host names (with port when given); empty
	// allows every registry.
	allowed []string
	// blockPrivate refuses connections to loopback, private, link-local,
	// shared and metadata addresses, checked after DNS resolution.
	blockPrivate bool
	// isInternal classifies addresses for blockPrivate; tests replace it
	// to block one loopback port while the registry stays reachable.
	isInternal func(netip.AddrPort) bool
}

func newNetworkPolicy(allowed []string, blockPrivate bool) *networkPolicy {
	p := &networkPolicy{blockPrivate: blockPrivate, isInternal: func(a netip.AddrPort) bool { return isInternalAddress(a.Addr()) }}
	for _, name := range allowed {
		p.allowed = append(p.allowed, strings.ToLower(dockerHubName(name)))
	}
	return p
}

func policyError(format string, args ...any) error {
	return &kindError{kind: kindPolicy, err: fmt.Errorf(format, args...)}
}

// checkRegistry refuses a registry outside the allow-list.
func (p *networkPolicy) checkRegistry(registry string) error {
	if p == nil || len(p.allowed) == 0 || slices.Contains(p.allowed, strings.ToLower(dockerHubName(registry))) {
		return nil
	}
	return policyError("registry %s is not in allowed_registries", registry)
}

// checkAddress refuses a resolved address that blockPrivate covers.
func (p *networkPolicy) checkAddress(host string, addr netip.AddrPort) error {
	if p == nil || !p.blockPrivate || !p.isInternal(addr) {
		return nil
	}
	return policyError("connection to %s (%s) rejected: block_private_networks forbids loopback, private, link-local and metadata addresses", host, addr.Addr())
}

// sharedAddressSpace is 100.64.0.0/10 (RFC 6598), where some clouds put
// their metadata service.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// isInternalAddress reports addresses that no public registry has.
func isInternalAddress(addr netip.Addr) bool {
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() || sharedAddressSpace.Contains(addr)
}

type policyContextKey struct{}

// policyFromContext returns the policy of the operation a request belongs
// to, or the one a dial was given for a token realm.
func policyFromContext(ctx context.Context) *networkPolicy {
	if op, ok := ctx.Value(opContextKey{}).(*operation); ok && op.client != nil {
		return op.client.policy
	}
	policy, _ := ctx.Value(policyContextKey{}).(*networkPolicy)
	return policy
}

// realmPolicies maps the host:port of bearer token realms, as seen in 401
// responses to clients with blockPrivate, to those clients' policies.
// regclient requests tokens without the operation's context, so without
// this a registry could send a client to an internal address through its
// realm. NOTE: two clients that see the same realm share the stricter
// policy for it.
var realmPolicies sync.Map

var realmRE = regexp.MustCompile(`(?i)\bbearer\b.*\brealm="([^"]+)"`)

// noteRealm records the token realm of a 401 response for the policy.
func noteRealm(policy *networkPolicy, challenge string) {
	if policy == nil || !policy.blockPrivate {
		return
	}
	match := realmRE.FindStringSubmatch(challenge)
	if match == nil {
		return
	}
	realm, err := url.Parse(match[1])
	if err != nil || realm.Host == "" {
		return
	}
	port := realm.Port()
	if port == "" {
		port = map[string]string{"http": "80"}[realm.Scheme]
		if port == "" {
			port = "443"
		}
	}
	realmPolicies.Store(net.JoinHostPort(strings.ToLower(realm.Hostname()), port), policy)
}

// dialContext attaches the realm policy to dials that carry no operation,
// then dials with dialControl checking each resolved address.
func dialContext(dialer *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if policyFromContext(ctx) == nil {
			if policy, ok := realmPolicies.Load(strings.ToLower(address)); ok {
				ctx = context.WithValue(ctx, policyContextKey{}, policy)
			}
		}
		conn, err := dialer.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		// Token requests carry no operation; their connections close with
		// net/http's idle timeout instead.
		if op := operationFromContext(ctx); op != nil && op.client != nil {
			return op.client.conns.track(conn)
		}
		return conn, nil
	}
}

// dialControl runs after DNS resolution, just before each connection, so
// a host name that resolves to an internal address is rejected as well.
func dialControl(ctx context.Context, network, address string, _ syscall.RawConn) error {
	policy := policyFromContext(ctx)
	if policy == nil || !policy.blockPrivate {
		return nil
	}
	addrPort, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse(ctx, policyError("connection to %s rejected: the address is invalid", address))
	}
	return refuse(ctx, policy.checkAddress(address, addrPort))
}

// refuse ends the whole operation with a policy error, so regclient does
// not retry what the policy will refuse again.
func refuse(ctx context.Context, err error) error {
	if err != nil {
		if op := operationFromContext(ctx); op != nil {
			op.stop(err)
		}
	}
	return err
}

// maxRedirects is below regclient's own limit of 10, so a loop reports this
// check's error, which names the cause.
const maxRedirects = 8

// checkRedirect applies the policy to redirects and keeps credentials on
// the host they belong to: Go's client would otherwise send the
// Authorization header to another port of the same host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return &kindError{kind: kindResponse, err: fmt.Errorf("stopped after %d redirects, the registry redirects in a loop", maxRedirects)}
	}
	if policy := policyFromContext(req.Context()); policy != nil && len(policy.allowed) > 0 {
		if err := policy.checkRegistry(req.URL.Host); err != nil {
			return refuse(req.Context(), policyError("redirect to %s rejected: it is not in allowed_registries", req.URL.Host))
		}
	}
	if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
		req.Header.Del("Authorization")
	}
	return nil
}

func init() {
	// regclient clones http.DefaultTransport for each host, so its dialer
	// is where every connection passes.
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: dialControl}
		t.DialContext = dialContext(dialer)
	}
}
