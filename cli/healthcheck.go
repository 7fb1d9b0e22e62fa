package cli

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// healthcheck GETs /up on the local server and returns 0 if it answers 200.
func healthcheck(s Settings, stderr io.Writer) int {
	if s.ListenErr != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", s.ListenErr)
		return 1
	}
	host := s.Host
	// A wildcard listen address is reachable on loopback; a specific one
	// may not be.
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(s.Port)) + "/up"
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: GET %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}
