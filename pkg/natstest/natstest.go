// Package natstest runs a real JetStream server per test: 127.0.0.1, a random
// port, its store in t.TempDir(), shut down by t.Cleanup.
package natstest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/simtrail/simtrail/pkg/natsx"
)

// Server is a running embedded JetStream server that a test can stop and
// start again on the same port and store.
type Server struct {
	t        testing.TB
	mu       sync.Mutex
	srv      *server.Server
	StoreDir string
	Port     int
}

// Run starts a JetStream server for t.
func Run(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, StoreDir: t.TempDir(), Port: -1}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server on its port and store.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := natsx.StartEmbedded(natsx.EmbeddedConfig{Port: s.Port, StoreDir: s.StoreDir})
	if err != nil {
		s.t.Fatalf("start nats: %v", err)
	}
	s.srv = srv
	s.Port = srv.Addr().(*net.TCPAddr).Port
}

// Stop shuts the server down and waits for it; safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	s.srv = nil
}

// URL is the client URL.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.ClientURL()
}

// Conn connects a plain client, closed at cleanup.
func (s *Server) Conn(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Stream ensures the SIMTRAIL stream exists on s.
func (s *Server) Stream(t testing.TB) jetstream.Stream {
	t.Helper()
	_, js := s.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := natsx.EnsureStream(ctx, js, natsx.StreamConfig{})
	if err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
	return st
}
