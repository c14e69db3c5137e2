// Command kube-apiserver starts the Kubernetes API server, built here from the published
// k8s.io/kubernetes module so that envtest has a real API server on machines without downloads.
package main

import (
	"os"

	_ "time/tzdata" // the server parses time zones (e.g. CronJob) without system tzdata

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
