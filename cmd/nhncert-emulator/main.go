// Command nhncert-emulator runs an EMULATOR of NHN Cloud Certificate Manager
// and its token service, for demos and tests only. It is never a real NHN
// endpoint: it keeps made-up certificates from a throwaway, untrusted test CA
// in memory.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nhncert/vault-plugin-secrets-nhncert/emulator"
)

const usageHeader = `nhncert-emulator: an EMULATOR of NHN Cloud Certificate Manager (API v1.1 and
v1.3) and its User Access Key token service, FOR DEMOS AND TESTS ONLY.

It is NOT a real NHN Cloud endpoint and is not affiliated with NHN. Every
certificate it serves is made up, signed by a throwaway test CA that nothing
trusts, and kept in memory only. Never use it, or its certificates, in
production.

It serves on one address:
  POST /oauth2/token/create                                   token service
  GET  /certmanager/v1.3/appkeys/{appKey}/certificates[/{name}/files]
  GET  /certmanager/v1.1/appkeys/{appKey}/certificates[/{name}/files]
  /_emulator/...                                              admin API (faults, certs, stats)

Usage:
  nhncert-emulator [flags]

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	listen, appKey, accessKeyID, secretAccessKey string
	tokenTTL                                     time.Duration
	maxPageSize, bulk                            int
	seed, addrFile                               string
	allowNonLoopback                             bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("nhncert-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:18200", "address to listen on (host:port; port 0 picks a free one)")
	fs.BoolVar(&c.allowNonLoopback, "allow-non-loopback", false, "allow -listen on a non-loopback address (the emulator has no TLS and demo credentials)")
	fs.StringVar(&c.appKey, "app-key", "demo-app-key", "the only appKey accepted")
	fs.StringVar(&c.accessKeyID, "access-key-id", "demo-access-key-id", "User Access Key ID accepted by the token service and v1.1")
	fs.StringVar(&c.secretAccessKey, "secret-access-key", "demo-secret-access-key", "Secret Access Key accepted by the token service and v1.1")
	fs.DurationVar(&c.tokenTTL, "token-ttl", 24*time.Hour, "lifetime (expires_in) of issued tokens, 60s..24h")
	fs.IntVar(&c.maxPageSize, "max-page-size", 0, "clamp the list pageSize to this (0: no cap)")
	fs.StringVar(&c.seed, "seed", "demo", "initial certificates: demo or none")
	fs.IntVar(&c.bulk, "bulk", 0, "also add N cheap certificates bulkNNNNN.example.com")
	fs.StringVar(&c.addrFile, "addr-file", "", "write the actual listening address (host:port) to this file once listening")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHeader)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if c.tokenTTL < 60*time.Second || c.tokenTTL > 86400*time.Second {
		return c, fmt.Errorf("-token-ttl must be between 60s and 24h, got %s", c.tokenTTL)
	}
	if c.maxPageSize < 0 {
		return c, errors.New("-max-page-size must not be negative")
	}
	if c.bulk < 0 {
		return c, errors.New("-bulk must not be negative")
	}
	if c.seed != "demo" && c.seed != "none" {
		return c, fmt.Errorf("-seed must be demo or none, got %q", c.seed)
	}
	if c.appKey == "" || c.accessKeyID == "" || c.secretAccessKey == "" {
		return c, errors.New("-app-key, -access-key-id and -secret-access-key must not be empty")
	}
	if !c.allowNonLoopback {
		if err := checkLoopback(c.listen); err != nil {
			return c, err
		}
	}
	return c, nil
}

// checkLoopback refuses listen addresses that are not on a loopback interface.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-listen %q is not a loopback address; this emulator is for local demos and tests (use -allow-non-loopback to override)", addr)
}

// run serves until ctx ends (SIGINT or SIGTERM in main), then shuts down.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	logger := log.New(stderr, "nhncert-emulator: ", log.LstdFlags|log.Lmicroseconds)
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "nhncert-emulator:", err)
		return 2
	}

	s := emulator.New(emulator.Options{
		AppKey:          c.appKey,
		AccessKeyID:     c.accessKeyID,
		SecretAccessKey: c.secretAccessKey,
		TokenTTL:        c.tokenTTL,
		MaxPageSize:     c.maxPageSize,
	})
	if c.seed == "demo" {
		if err := s.SeedDemo(); err != nil {
			logger.Printf("seeding the demo set: %v", err)
			return 1
		}
	}
	if c.bulk > 0 {
		if err := s.Seed("bulk", c.bulk); err != nil {
			logger.Printf("seeding %d bulk certificates: %v", c.bulk, err)
			return 1
		}
	}

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		logger.Printf("listen: %v", err)
		return 1
	}
	addr := ln.Addr().String()
	if c.addrFile != "" {
		if err := writeFileAtomic(c.addrFile, []byte(addr+"\n")); err != nil {
			logger.Printf("writing -addr-file: %v", err)
			_ = ln.Close()
			return 1
		}
		defer os.Remove(c.addrFile)
	}

	logger.Printf("EMULATOR for demos and tests only; NOT a real NHN Cloud endpoint")
	logger.Printf("listening on http://%s (app key %q, access key id %q, secret access key set, not shown; %d certificates)",
		addr, c.appKey, c.accessKeyID, len(s.Names()))

	srv := &http.Server{
		Handler:           logRequests(s, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(stderr, "nhncert-emulator: http: ", log.LstdFlags),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		logger.Printf("serve: %v", err)
		return 1
	case <-ctx.Done():
	}
	logger.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Printf("shutdown: %v", err)
		_ = srv.Close()
	}
	return 0
}

// writeFileAtomic writes via a temporary file and a rename, so a reader never
// sees a partial address.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// logRequests logs one line per request: method, path (no query, headers or
// body, so no token, secret or key material), status and duration.
func logRequests(next http.Handler, logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			status := fmt.Sprint(rec.status)
			switch {
			case rec.hijacked:
				status = "reset"
			case rec.status == 0 && r.Context().Err() != nil:
				status = "client-gone"
			case rec.status == 0:
				status = "aborted"
			}
			logger.Printf("%s %s %s %s", r.Method, r.URL.EscapedPath(), status, time.Since(start).Round(time.Microsecond))
		}()
		next.ServeHTTP(rec, r)
	})
}

type recorder struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	r.hijacked = true
	return hj.Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
