//go:build tools

// Package tools pins oauth2-proxy, the authorization service the extAuth
// integration tests put behind Gantry (its /oauth2/auth endpoint, as
// ingress-nginx users pair it with auth-url).
package tools

import _ "github.com/oauth2-proxy/oauth2-proxy/v7"
