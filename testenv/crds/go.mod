// Module crds pins the third-party CustomResourceDefinitions (and Argo's JSON schema) the tests
// install. Nothing here is compiled: testenv/build.py runs `go mod download` so the files come
// from the Go module proxy and are checked against go.sum before they are used.
module argo-bluegreen/testenv/crds

go 1.26.0

require (
	github.com/argoproj/argo-workflows/v4 v4.0.5
	istio.io/api v1.30.8
	sigs.k8s.io/gateway-api v1.6.3
)
