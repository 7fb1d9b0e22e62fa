//go:build !linux

package main

import "os/exec"

// startPinned starts cmd under taskset (pin_linux.go pins without it).
func startPinned(cmd *exec.Cmd, list string) error {
	if list != "" {
		pinnedCmd := pinned(list, cmd.Args...)
		pinnedCmd.Env, pinnedCmd.Stdout, pinnedCmd.Stderr = cmd.Env, cmd.Stdout, cmd.Stderr
		*cmd = *pinnedCmd
	}
	return cmd.Start()
}
