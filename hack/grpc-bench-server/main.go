// The gRPC backend of hack/bench.sh h2: grpc-go's interoperability test
// service (grpc.testing.TestService, the same implementation the interop
// suite's server runs) with server reflection, so ghz finds the methods
// without a .proto file. Plain HTTP/2 (h2c) on -listen.
package main

import (
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:19501", "address to serve h2c gRPC on")
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
	reflection.Register(s)
	log.Printf("serving grpc.testing.TestService on %s", lis.Addr())
	if err := s.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
