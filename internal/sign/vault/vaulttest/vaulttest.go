// Package vaulttest serves the two endpoints of HashiCorp Vault's transit secrets
// engine that signing uses, reading a key and signing with it, for tests of
// hashivault:// key references without a Vault server. The private key stays in
// the server's memory, as it would in Vault.
package vaulttest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// Token is the only Vault token the server accepts.
const Token = "vaulttest-token"

// A Server is a Vault transit engine, mounted at "transit", holding one key.
type Server struct {
	*httptest.Server
	// Signed counts the signatures made.
	Signed atomic.Int64
	// Deny, when set, makes signing fail with 403 "permission denied".
	Deny atomic.Bool
}

// New starts a Server, stopped when the test ends, holding key as the transit key
// name: an [ed25519.PrivateKey], or an ECDSA P-256 key, which Vault has too but
// which the server only shows.
func New(t testing.TB, name string, key crypto.Signer) *Server {
	s := &Server{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errors":[]}`, http.StatusNotFound) // as Vault answers for no such key
	})
	mux.HandleFunc("GET /v1/transit/keys/"+name, func(w http.ResponseWriter, r *http.Request) {
		pub := map[string]string{"name": "ecdsa-p256"}
		if k, ok := key.Public().(ed25519.PublicKey); ok {
			// Vault gives ed25519 keys in base64, the others in PEM.
			pub = map[string]string{"name": "ed25519", "public_key": base64.StdEncoding.EncodeToString(k)}
		} else {
			pem, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
			if err != nil {
				t.Error(err)
			}
			pub["public_key"] = string(pem)
		}
		reply(w, map[string]any{"latest_version": 1, "keys": map[string]any{"1": pub}})
	})
	mux.HandleFunc("/v1/transit/sign/"+name, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input     []byte `json:"input"` // base64 in JSON
			Prehashed bool   `json:"prehashed"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"errors":["bad request"]}`, http.StatusBadRequest)
			return
		}
		if s.Deny.Load() {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		if req.Prehashed { // ed25519 signers must send the message itself
			http.Error(w, `{"errors":["vaulttest: prehashed input"]}`, http.StatusBadRequest)
			return
		}
		sig, err := key.Sign(rand.Reader, req.Input, crypto.Hash(0))
		if err != nil {
			http.Error(w, `{"errors":["vaulttest: cannot sign"]}`, http.StatusInternalServerError)
			return
		}
		s.Signed.Add(1)
		reply(w, map[string]any{"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig)})
	})
	s.Server = httptest.NewServer(tokenRequired(mux))
	t.Cleanup(s.Close)
	return s
}

// tokenRequired answers 403 to requests without [Token].
func tokenRequired(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != Token {
			http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// reply writes data as a Vault response.
func reply(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"data": data})
}
