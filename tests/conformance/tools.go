//go:build tools

// Pins the suite's echo backend, run by the test node agent for every pod of
// the suite's echo-basic image.
package conformance_test

import _ "sigs.k8s.io/gateway-api/conformance/echo-basic"
