// Command etcd is the etcd server of go.etcd.io/etcd/server/v3 (the version pinned in go.mod), built
// here because Debian ships no etcd of the 3.6 line that kube-apiserver 1.35 is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
