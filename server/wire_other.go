//go:build !unix

package server

import "net"

// useRaw does nothing here: w reads through net.Conn.Read.
func (w *wire) useRaw(net.Conn) {}

func (w *wire) rawRead(uintptr) bool { return true }
