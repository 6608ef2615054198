//go:build tools

// Package tools blank-imports the main packages that hack/testbin.sh builds, so
// that `go mod tidy` keeps every module they need (and its checksum) in go.mod
// and go.sum. It is never compiled: the build tag keeps it out of every build.
package tools

import (
	_ "go.etcd.io/etcd/server/v3" // etcd 3.5: the module root is package main (etcdmain)
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
