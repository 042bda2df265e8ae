// Command syncer-front plays the TLS front of vCluster's syncer on port 8443 for the test emulator
// (tests/support/syncer_proxy.py starts it; loft-sh/vcluster pkg/server/server.go): the serving
// certificate it is given, client certificates requested but not required at the handshake
// (RequestClientCert, as Kubernetes' SecureServing does), and then, as the x509 authenticator in a
// fail-on-error union does:
//   - a client certificate that the client-ca pool verifies (usage clientAuth, at the current time):
//     the request goes on to kube-apiserver as the admin of admin.conf;
//   - a client certificate that it does not verify (another CA, expired): 401 Unauthorized, a
//     Kubernetes Status, and nothing goes on;
//   - no client certificate: the request goes on as it is (a bearer token is checked upstream).
//
// It prints "listening 127.0.0.1:PORT" once it serves and exits when its standard input closes, so it
// never outlives the process that started it. Standard library only; it never logs key material.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

const unauthorized = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
	`"message":"Unauthorized","reason":"Unauthorized","code":401}` + "\n"

type front struct {
	clientCAs *x509.CertPool
	admin     http.Handler // to kube-apiserver with the admin client certificate
	anonymous http.Handler // to kube-apiserver without one
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		f.anonymous.ServeHTTP(w, r)
		return
	}
	intermediates := x509.NewCertPool()
	for _, cert := range r.TLS.PeerCertificates[1:] {
		intermediates.AddCert(cert)
	}
	_, err := r.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         f.clientCAs,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache, private")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, unauthorized)
		return
	}
	r.Header.Del("Authorization") // the certificate is who the request is; the admin goes on
	f.admin.ServeHTTP(w, r)
}

func upstream(target *url.URL, certs []tls.Certificate) http.Handler {
	// HTTP/1.1 to kube-apiserver on the pod's loopback: upgraded requests (exec, port-forward) go through
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, Certificates: certs}, //nolint:gosec
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport:     transport,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}
}

func main() {
	certFile := flag.String("cert", "", "serving certificate chain (PEM)")
	keyFile := flag.String("key", "", "serving private key (PEM)")
	clientCA := flag.String("client-ca", "", "client CA bundle (PEM): every certificate is a root")
	upstreamAddr := flag.String("upstream", "", "kube-apiserver address HOST:PORT")
	adminCert := flag.String("admin-cert", "", "admin client certificate (PEM)")
	adminKey := flag.String("admin-key", "", "admin client key (PEM)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("syncer-front: ")

	serving, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("serving key pair: %v", err)
	}
	admin, err := tls.LoadX509KeyPair(*adminCert, *adminKey)
	if err != nil {
		log.Fatalf("admin key pair: %v", err)
	}
	bundle, err := os.ReadFile(*clientCA)
	if err != nil {
		log.Fatalf("client CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		log.Fatalf("client CA %s holds no certificate", *clientCA)
	}
	target := &url.URL{Scheme: "https", Host: *upstreamAddr}
	handler := &front{clientCAs: pool, admin: upstream(target, []tls.Certificate{admin}),
		anonymous: upstream(target, nil)}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	server := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are expected
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{serving},
			ClientAuth:   tls.RequestClientCert,
			MinVersion:   tls.VersionTLS12,
		},
	}
	fmt.Printf("listening %s\n", listener.Addr())
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(0)
	}()
	if err := server.ServeTLS(listener, "", ""); err != nil && err != http.ErrServerClosed {
		log.Fatalf("serve: %v", err)
	}
}
