package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
)

// A registry that sends clients to a token realm on an internal address
// must not get that address contacted, although regclient requests tokens
// without the operation's context.
func TestTokenRealmHonorsBlockPrivate(t *testing.T) {
	var tokenHits atomic.Int64
	tokenServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenHits.Add(1)
		fmt.Fprint(w, `{"token":"t"}`)
	}))
	defer tokenServer.Close()
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tokenServer.URL))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer registry.Close()

	registryHost := registry.Listener.Addr().String()
	tokenURL, _ := url.Parse(tokenServer.URL)
	tokenPort, _ := strconv.Atoi(tokenURL.Port())

	c, err := newClient([]byte(fmt.Sprintf(`{"hosts":[{"name":%q,"tls":"disabled"}],"block_private_networks":true}`, registryHost)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// Both servers are on loopback: treat only the token server's port as internal.
	c.policy.isInternal = func(a netip.AddrPort) bool { return int(a.Port()) == tokenPort }

	op := c.newOperation([]byte(fmt.Sprintf(`{"kind":"config","image":"%s/app:v1","timeout_ms":10000}`, registryHost)))
	op.launch()
	op.wait(-1)

	if op.err == nil {
		t.Fatal("expected an error, the token realm is internal")
	}
	if kind := errorKind(op.err); kind != kindPolicy {
		t.Errorf("error kind %q, expected %q: %v", kind, kindPolicy, op.err)
	}
	if hits := tokenHits.Load(); hits != 0 {
		t.Fatalf("token server received %d requests, expected 0", hits)
	}
}

func TestRealmParsing(t *testing.T) {
	policy := newNetworkPolicy(nil, true)
	noteRealm(policy, `Bearer realm="https://auth.example.com/token",service="registry"`)
	noteRealm(policy, `bearer service="x",realm="http://169.254.169.254/latest"`)
	noteRealm(policy, `Basic realm="registry"`)
	for _, key := range []string{"auth.example.com:443", "169.254.169.254:80"} {
		if _, ok := realmPolicies.Load(key); !ok {
			t.Errorf("realm %s not recorded", key)
		}
	}
	if _, ok := realmPolicies.Load("registry:443"); ok {
		t.Error("a Basic realm was recorded")
	}
}
