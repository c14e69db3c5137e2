package operatorfaults

import (
	"testing"

	"github.com/kvop/kvop/internal/operatortest"
)

func TestMain(m *testing.M) { operatortest.Main(m) }
