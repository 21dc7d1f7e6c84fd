package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestInternalImportsNoService keeps the tree's imports pointing one way:
// the services build on internal/, and the wiring that puts them together
// lives here, in the command, above both. A package under internal/ that
// imports a service (directly, through another package, or from its
// tests) would let a change in a service ripple into the pieces every
// service shares.
func TestInternalImportsNoService(t *testing.T) {
	t.Parallel()
	const module = "github.com/feedmon/feedmon"
	// One line per package under internal/: the package, then everything
	// it and its tests import.
	cmd := exec.Command("go", "list", "-f",
		`{{.ImportPath}} {{join .Deps " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`,
		module+"/internal/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Fatalf("go list found %d packages under internal/, want the whole tree:\n%s", len(lines), out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, module+"/services/") || imp == module+"/services" {
				t.Errorf("%s imports %s: nothing under internal/ may depend on a service", pkg, imp)
			}
		}
	}
}
