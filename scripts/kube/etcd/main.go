// Command etcd is etcd v3.6 built from the Go module proxy: etcd's own
// go.mod has replace directives, so `go install` refuses it, but a module
// that requires it can build its main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
