// Package integration proves the nhncert plugin inside a real Vault: it
// starts the pinned Vault binary (server, CLI and Agent) and the NHN
// emulator as subprocesses, registers the plugin by its sha256, and checks
// every row of the contract (/work/shared/CONTRACT.md) through Vault's CLI
// and HTTP API.
//
// The tests need three binaries, taken from the environment when set and
// built otherwise:
//
//	VAULT_BIN             Vault v1.21.0 (default: ../scripts/vault.sh)
//	NHNCERT_PLUGIN_BIN    the plugin, reporting NHNCERT_PLUGIN_VERSION (default v0.1.0)
//	NHNCERT_EMULATOR_BIN  cmd/nhncert-emulator
//
// NHNCERT_SKIP_VAULT=1 skips every test (reported as skipped, never passed).
// Everything listens on 127.0.0.1 only.
package integration
