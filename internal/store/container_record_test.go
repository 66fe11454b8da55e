package store

import (
	"reflect"
	"testing"

	"github.com/flowd/flowd/internal/run"
)

// TestContainerRecordFields: containerRecord stores every field of run.Container (a field
// added there and forgotten here would be lost between the trigger and the runner).
func TestContainerRecordFields(t *testing.T) {
	t.Parallel()
	if got, want := reflect.TypeFor[containerRecord]().NumField(), reflect.TypeFor[run.Container]().NumField(); got != want {
		t.Errorf("containerRecord has %d fields, run.Container %d: store the new ones (containerJSON, containerScan)", got, want)
	}
}
