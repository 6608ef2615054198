//go:build tools

// Package tools pins grpc-go's interop client and server, the gRPC
// interoperability suite hack/test.sh runs through the proxy.
package tools

import (
	_ "google.golang.org/grpc/interop/client"
	_ "google.golang.org/grpc/interop/server"
)
