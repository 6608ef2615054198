// A backend for gantry's gRPC health-check tests: grpc-go's own health
// service (google.golang.org/grpc/health, the grpc.health.v1 reference
// implementation) and the interop suite's TestService on one server, plain
// HTTP/2 (h2c) or TLS. Nothing of gantry's checker is implemented here.
//
// The empty service name and every name in -services start SERVING; SIGUSR1
// sets them all NOT_SERVING, SIGUSR2 SERVING again. Other names are unknown
// to the server (it answers NOT_FOUND).
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (127.0.0.1)")
	services := flag.String("services", "", "comma-separated service names that start SERVING (besides \"\")")
	certFile := flag.String("tls_cert_file", "", "serve TLS with this certificate (PEM)")
	keyFile := flag.String("tls_key_file", "", "the certificate's private key (PEM)")
	flag.Parse()

	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	var opts []grpc.ServerOption
	if *certFile != "" {
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("tls: %v", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())

	names := []string{""}
	for _, n := range strings.Split(*services, ",") {
		if n != "" {
			names = append(names, n)
		}
	}
	set := func(st healthpb.HealthCheckResponse_ServingStatus) {
		for _, n := range names {
			hs.SetServingStatus(n, st)
		}
		log.Printf("health: %v for %q", st, names)
	}
	set(healthpb.HealthCheckResponse_SERVING)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for x := range sig {
			if x == syscall.SIGUSR1 {
				set(healthpb.HealthCheckResponse_NOT_SERVING)
			} else {
				set(healthpb.HealthCheckResponse_SERVING)
			}
		}
	}()
	log.Printf("serving on %s", lis.Addr())
	if err := s.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
