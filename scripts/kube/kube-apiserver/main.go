// Command kube-apiserver is the Kubernetes API server built from
// k8s.io/kubernetes as a library (its staging modules replaced by their
// published versions in go.mod); the integration tests run it on loopback
// against a local etcd, with no kubelet and no controller manager.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() { os.Exit(cli.Run(app.NewAPIServerCommand())) }
