//go:build !unix

package cli

import (
	"os"
	"os/exec"
)

// Without process groups and signals (Windows), kvop can only kill CMD itself.

type procSignal int

const (
	sigTerm procSignal = iota
	sigKill
)

func isolate(*exec.Cmd) {}

func signalGroup(p *os.Process, _ procSignal) { _ = p.Kill() }

func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }

func signalNumber(sig os.Signal) int {
	if sig == os.Interrupt {
		return 2
	}
	return 15
}
