// ext-authz-server: an Envoy ext_authz gRPC service
// (envoy.service.auth.v3.Authorization/Check) for Gantry's integration tests,
// built on grpc-go and go-control-plane's generated types. No Envoy ext_authz
// product is served by the Go module proxy (opa-envoy-plugin is not), so this
// is a service of our own with the contract of Envoy's: the tests then check
// Gantry's encoding against the reference protobuf types, not against our
// own decoder.
//
// Policy (fixed, for the tests):
//   - "authorization: Bearer good" (or "Bearer body-ok" with a body holding
//     "allow-me") → OK, with ok_response headers x-auth-user: alice (set)
//     and x-tenant: t1 (append), and headers_to_remove: x-remove-me;
//   - "authorization: Bearer slow" → OK after 3 s;
//   - anything else → PERMISSION_DENIED with a 403 (or 401 for no
//     authorization) denied_response, x-denied-by: ext-authz-server and a
//     text body.
//
// Every CheckRequest is appended to --log as one JSON line (protojson), so a
// test reads back what Gantry sent. --tls-cert/--tls-key serve TLS.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"
)

type server struct {
	authv3.UnimplementedAuthorizationServer
	mu  sync.Mutex
	log *os.File
}

func header(k, v string, appendAction bool) *corev3.HeaderValueOption {
	o := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
	if appendAction {
		o.AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	} else {
		o.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	}
	return o
}

func (s *server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	line, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(req)
	s.mu.Lock()
	s.log.Write(append(line, '\n'))
	s.mu.Unlock()
	h := req.GetAttributes().GetRequest().GetHttp()
	authz := h.GetHeaders()["authorization"]
	allow := authz == "Bearer good" ||
		(authz == "Bearer body-ok" && strings.Contains(h.GetBody()+string(h.GetRawBody()), "allow-me"))
	if authz == "Bearer slow" {
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		allow = true
	}
	if allow {
		return &authv3.CheckResponse{
			Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:         []*corev3.HeaderValueOption{header("x-auth-user", "alice", false), header("x-tenant", "t1", true)},
				HeadersToRemove: []string{"x-remove-me"},
			}},
		}, nil
	}
	code := typev3.StatusCode_Forbidden
	if authz == "" {
		code = typev3.StatusCode_Unauthorized
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied), Message: "denied"},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: code},
			Headers: []*corev3.HeaderValueOption{header("x-denied-by", "ext-authz-server", false)},
			Body:    "denied by ext-authz-server for " + h.GetPath(),
		}},
	}, nil
}

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on")
	logPath := flag.String("log", "checks.jsonl", "CheckRequests, one JSON line each")
	certFile := flag.String("tls-cert", "", "serve TLS (h2 by ALPN) with this certificate (PEM) ...")
	keyFile := flag.String("tls-key", "", "... and this key (PEM)")
	flag.Parse()
	f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", l.Addr())
	var opts []grpc.ServerOption
	if *certFile != "" {
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(g, &server{log: f})
	log.Fatal(g.Serve(l))
}
