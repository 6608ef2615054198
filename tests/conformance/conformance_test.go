// The official Gateway API conformance suite, run as upstream runs it
// (sigs.k8s.io/gateway-api/conformance/conformance_test.go): every option comes
// from the suite's own flags (--gateway-class, --supported-features,
// --report-output, ...), set by run.sh.
package conformance_test

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
