//go:build tools

// Package tools pins h2spec, the HTTP/2 conformance suite hack/test.sh runs.
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
