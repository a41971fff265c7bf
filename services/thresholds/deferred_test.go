package thresholds

import (
	"testing"

	"github.com/simtrail/simtrail/pkg/projection/projtest"
)

// TestDeferredIndexesMatchSchema: each index Build creates after a bulk
// build is the one the migration creates.
func TestDeferredIndexesMatchSchema(t *testing.T) {
	projtest.DeferredIndexesMatchSchema(t, newProjector(t, Options{}))
}
