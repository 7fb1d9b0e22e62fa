// Package netguard keeps outbound requests to URLs chosen by tenants (webhook
// targets, later push endpoints) away from the server's own network: its
// HTTP client refuses loopback, private, link-local, cloud-metadata and other
// non-public addresses after DNS resolution, ignores proxies from the
// environment and follows no redirects. It imports nothing of ours.
package netguard
