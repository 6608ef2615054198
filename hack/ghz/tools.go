//go:build tools

// Package tools pins ghz, the gRPC load generator hack/bench.sh h2 runs
// against Gantry, nginx (grpc_pass) and HAProxy.
package tools

import (
	_ "github.com/bojand/ghz/cmd/ghz"
)
