package remote

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePEM writes blocks of one type to a file in dir and returns its path.
func writePEM(t *testing.T, dir, name, typ string, der ...[]byte) string {
	t.Helper()
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientCA makes a CA and a client certificate it signed; it returns the CA and the PEM
// files of the client's certificate and key.
func clientCA(t *testing.T) (ca *x509.Certificate, certFile, keyFile string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test device CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "device-0001"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return ca, writePEM(t, dir, "client.pem", "CERTIFICATE", der), writePEM(t, dir, "client.key", "PRIVATE KEY", keyDER)
}

func TestTLS(t *testing.T) {
	ca, certFile, keyFile := clientCA(t)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(ca)
	ok := func(w http.ResponseWriter, r *http.Request, _ int) { serve(w, r, []byte("summary")) }

	open := newUnstarted(t, ok)
	open.StartTLS()
	mutual := newUnstarted(t, ok)
	mutual.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs}
	mutual.StartTLS()
	plain := newServer(t, ok)
	redirect := newUnstarted(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	})
	redirect.StartTLS()

	serverCAs := x509.NewCertPool()
	serverCAs.AddCert(open.Certificate()) // both servers use httptest's certificate
	caFile := writePEM(t, t.TempDir(), "ca.pem", "CERTIFICATE", open.Certificate().Raw)

	tests := []struct {
		name string
		url  string
		tls  TLSOptions
		err  string
	}{
		{"trusted pool", open.URL, TLSOptions{RootCAs: serverCAs}, ""},
		{"trusted CA file", open.URL, TLSOptions{CAFile: caFile}, ""},
		{"system roots only", open.URL, TLSOptions{}, "certificate"},
		{"another CA only", open.URL, TLSOptions{RootCAs: clientCAs}, "certificate"},
		{"client certificate", mutual.URL, TLSOptions{RootCAs: serverCAs, CertFile: certFile, KeyFile: keyFile}, ""},
		{"no client certificate", mutual.URL, TLSOptions{RootCAs: serverCAs}, "certificate"},
		{"redirect to http", redirect.URL, TLSOptions{RootCAs: serverCAs}, "refusing a redirect from https to http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.TLS, opts.Retries = tt.tls, -1
			c := newClient(t, tt.url+"/repo", opts)
			b, err := c.Get(t.Context(), "summary", 100)
			if tt.err == "" {
				if err != nil || string(b) != "summary" {
					t.Fatalf("Get = %q, %v", b, err)
				}
				return
			}
			checkOneLine(t, err, tt.url+"/repo/summary")
			if !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %q lacks %q", err, tt.err)
			}
		})
	}
}

func TestTLSOptions(t *testing.T) {
	_, certFile, keyFile := clientCA(t)
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644)
	for _, tt := range []struct {
		name string
		opts TLSOptions
		err  string
	}{
		{"defaults", TLSOptions{}, ""},
		{"missing CA file", TLSOptions{CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
		{"CA file without PEM", TLSOptions{CAFile: notPEM}, "no PEM certificate"},
		{"certificate without key", TLSOptions{CertFile: certFile}, "both a certificate file and a key file"},
		{"key as certificate", TLSOptions{CertFile: keyFile, KeyFile: keyFile}, keyFile},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := tt.opts.config()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %v: want one line with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conf.MinVersion != tls.VersionTLS12 {
				t.Fatalf("minimum TLS version %x", conf.MinVersion)
			}
		})
	}
}
