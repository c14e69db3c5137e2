// Package chart tests the Helm chart in charts/kvop: it renders the chart through the Helm SDK
// and asserts on the objects (defaults, every value, conflicting values, schema rejections),
// lints it, checks that its generated CRD and ClusterRole templates match config/ (run
// `make chart-crds` after `make manifests`), and installs the rendered objects into a real
// kube-apiserver.
package chart
