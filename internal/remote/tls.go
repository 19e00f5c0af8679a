package remote

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSOptions configure https connections. TLS 1.2 is the minimum version.
type TLSOptions struct {
	// CAFile is a PEM file of the CA certificates to trust instead of the system's.
	CAFile string
	// RootCAs, when set, are trusted instead of the system's (and added to CAFile's).
	RootCAs *x509.CertPool
	// CertFile and KeyFile are the PEM client certificate (with its chain) and private key
	// presented to servers that ask for one.
	CertFile, KeyFile string
}

// config returns the tls.Config of the options.
func (o TLSOptions) config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.RootCAs != nil {
		conf.RootCAs = o.RootCAs.Clone()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("remote: CA file: %w", err)
		}
		if conf.RootCAs == nil {
			conf.RootCAs = x509.NewCertPool()
		}
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("remote: CA file %s: no PEM certificate in it", o.CAFile)
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("remote: a client certificate needs both a certificate file and a key file")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("remote: client certificate %s, key %s: %w", o.CertFile, o.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
