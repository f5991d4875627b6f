// Command release packs the plugin's release artifacts from binaries that
// scripts/release.sh built: reproducible zips, the OCI image layout of
// the multi-arch image (and its push), and the license check of every
// module compiled into the plugin.
//
//	release zip -o OUT.zip -mtime UNIX -name ENTRY BINARY
//	release oci -o OUT.tar -mtime UNIX -version vX.Y.Z -name BINARY_NAME [-push REF] linux/amd64=BIN linux/arm64=BIN
//	release licenses [-goos linux,darwin,windows] PACKAGE
//
// It is a module of its own so that go-containerregistry stays out of the
// plugin's go.mod and out of the plugin's SBOM: nothing here is compiled
// into the plugin.
package main
