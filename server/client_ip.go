package server

import (
	"net"
	"net/http"
	"strings"
)

// clientIP is the address of the client behind r: the peer, or with
// trustHops proxies the entry trustHops from the right of X-Forwarded-For
// (entries further left are client-supplied and could be forged).
func clientIP(r *http.Request, trustHops int) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if trustHops <= 0 {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				hops = append(hops, p)
			}
		}
	}
	if len(hops) == 0 {
		return peer
	}
	i := len(hops) - trustHops
	if i < 0 {
		i = 0
	}
	if ip := net.ParseIP(hops[i]); ip != nil {
		return ip.String()
	}
	return peer
}
