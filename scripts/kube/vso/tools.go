//go:build tools

// Package vso pins the Vault Secrets Operator's main package; the build
// script runs `go build github.com/hashicorp/vault-secrets-operator` in this
// module (`go install` cannot: the module proxy refuses VSO's version list).
package vso

import _ "github.com/hashicorp/vault-secrets-operator"
