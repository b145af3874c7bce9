// Command etcd is the etcd server, built from its official module at the
// version go.mod pins, for plumb's local test clusters.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
