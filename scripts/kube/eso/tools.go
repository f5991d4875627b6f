//go:build tools

// Package eso pins the External Secrets Operator's main package; the build
// script runs `go build github.com/external-secrets/external-secrets` in this
// module (`go install` refuses ESO: its go.mod has a replace directive,
// copied in this go.mod).
package eso

import _ "github.com/external-secrets/external-secrets"
