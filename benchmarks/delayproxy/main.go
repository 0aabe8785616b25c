// Command delayproxy serves a reverse proxy on 127.0.0.1 that waits a fixed
// delay before forwarding each request, to stand in for network latency.
//
// Usage: delayproxy UPSTREAM DELAY_SECONDS
//
// It prints the proxy's "127.0.0.1:PORT" on one line, then serves until its
// standard input closes, so it stops when the benchmark that started it
// exits. Unlike a Python proxy it needs little CPU per request and keeps
// its upstream connections alive, so the benchmark's concurrent rows
// measure the client and the registry rather than the proxy.
package main

import (
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: delayproxy UPSTREAM DELAY_SECONDS")
	}
	upstream := &url.URL{Scheme: "http", Host: os.Args[1]}
	seconds, err := strconv.ParseFloat(os.Args[2], 64)
	if err != nil || !(seconds >= 0) || math.IsInf(seconds, 0) {
		log.Fatalf("invalid delay %q: expected a finite, non-negative number of seconds", os.Args[2])
	}
	delay := time.Duration(seconds * float64(time.Second))

	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			// The registry builds the URLs it returns from Host, so they point back at the proxy.
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		proxy.ServeHTTP(w, r)
	})

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(listener.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	log.Fatal(http.Serve(listener, handler))
}
