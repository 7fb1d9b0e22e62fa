module github.com/sockudo/sockudo

go 1.26.8

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/lxzan/gws v1.8.9
	go.etcd.io/bbolt v1.4.3
	golang.org/x/time v0.16.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	golang.org/x/sys v0.29.0 // indirect
)
