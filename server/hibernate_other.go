//go:build !linux

package server

import "errors"

// poller is not implemented here: sockets keep their read goroutine.
type poller struct{}

const hibernationSupported = false

func newPoller() (*poller, error)  { return nil, errors.New("server: no epoll") }
func (p *poller) watch(*conn) bool { return false }
func (p *poller) run(*hibernator)  {}
func (p *poller) wakeUp()          {}
func (p *poller) close()           {}
