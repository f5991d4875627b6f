# nhncert: build, test and demo. `make help` lists the targets.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= v0.1.0
PLUGIN  := vault-plugin-secrets-nhncert
MODULE  := github.com/nhncert/vault-plugin-secrets-nhncert
LDFLAGS := -X $(MODULE).Version=$(VERSION)
# Bounded fuzzing inside `make test`: each target runs a fixed number of
# executions (about 10 s here), not a duration: a -fuzztime duration races
# Go's fuzz coordinator (golang/go#75804, unfixed in Go 1.26) and fails now
# and then with a bare "context deadline exceeded" and no crasher. Set
# FUZZTIME (e.g. 1m, or 500000x) for a longer hunt.
FUZZTIME ?=
# Where the pinned Vault build is cached, outside the repository.
export NHNCERT_CACHE ?= $(HOME)/.cache/nhncert

.PHONY: help build test unit fuzz integration vet lint fmt fmt-check vault kube demo dev clean bench soak compat chaos release release-check

help:
	@echo "make build        build bin/$(PLUGIN) and bin/nhncert-emulator"
	@echo "make test         everything CI runs: gofmt, vet, staticcheck, unit, fuzz (about 10 s each), real-Vault integration, Kubernetes tier"
	@echo "make demo         Vault dev server + NHN emulator + plugin, then list and read a certificate"
	@echo "make dev          the same against real NHN (needs NHN_APP_KEY, NHN_ACCESS_KEY_ID, NHN_SECRET_ACCESS_KEY)"
	@echo "make bench        load benchmark through a real Vault (nhncert vs null plugin vs KV) + Go benchmarks"
	@echo "make soak         the randomized model test (model_test.go) for SOAK_TIME (default 20m) of seeded histories, with the race detector"
	@echo "make chaos        the chaos run (integration/chaos_*_test.go) on a 3-node raft Vault for CHAOS_TIME (default 20m); CHAOS_SEED replays a seed"
	@echo "make vault        build or find the pinned Vault (cached in $(NHNCERT_CACHE))"
	@echo "make compat       the integration suite against each Vault line (1.19, 1.20, 1.21; built once, cached)"
	@echo "make release      VERSION=vX.Y.Z: zips for every platform, SHA256SUMS (+ .sig with RELEASE_GPG_KEY), SBOMs, OCI image into dist/ (RELEASE_IMAGE=registry/repo pushes it)"
	@echo "make release-check the release smoke of make test: reproducible zip, register it in Vault, image, upgrade, licenses, workflows"
	@echo "make kube         build or find etcd, kube-apiserver, VSO and ESO for the Kubernetes tier (cached there too)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$(PLUGIN) ./cmd/$(PLUGIN)
	$(GO) build -trimpath -o bin/nhncert-emulator ./cmd/nhncert-emulator

test: fmt-check vet lint unit fuzz integration release-check

# Every package of the module but the real-Vault tests (integration), with
# the race detector: the engine, nhn/, certfile/, hostmatch/, the emulator,
# the programs, the test kit and the benchmark tool's own tests. A new
# package is in without a change here.
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/integration$$')

# Each fuzz target runs in its package on top of its committed seed corpus
# (<package>/testdata/fuzz/<target>), for its own execution count
# (package:target:count) or for FUZZTIME when set.
FUZZ_TARGETS := ./certfile:FuzzParseBundle:20000x .:FuzzRenderBundle:5000x .:FuzzValidateName:50000x .:FuzzListServable:20000x ./nhn:FuzzListAnswer:40000x
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		p=$${t%%:*}; r=$${t#*:}; f=$${r%%:*}; n=$(if $(FUZZTIME),$(FUZZTIME),$${r##*:}); \
		echo "fuzz $$p $$f for $$n"; \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $$n -fuzzminimizetime 10x $$p || exit 1; \
	done

vault:
	@scripts/vault.sh

kube:
	@for p in etcd kube-apiserver vso eso; do scripts/kube.sh $$p; done

# Real Vault server and Vault Agent tests, and the Kubernetes tier (VSO and
# ESO against a loopback kube-apiserver and etcd, built once by
# scripts/kube.sh into $(NHNCERT_CACHE)). NHNCERT_SKIP_VAULT=1 skips them
# all, NHNCERT_SKIP_KUBE=1 the Kubernetes tier; skipped tests are reported
# as skipped, never as passed; CI (CI set) may skip neither.
# The release tests need a release built first: make release-check runs
# them, so the integration run leaves them out instead of counting skips.
export RELEASE_TESTS := ^(TestReleaseSums|TestReleaseZip|TestReleaseImage|TestUpgrade)$$
integration: build
	@if [ "$${NHNCERT_SKIP_VAULT:-}" = 1 ] && [ -n "$${CI:-}" ]; then \
		echo "NHNCERT_SKIP_VAULT=1 is refused when CI is set: CI must check against a real Vault"; exit 1; \
	elif [ "$${NHNCERT_SKIP_VAULT:-}" = 1 ]; then \
		echo "SKIPPED: integration tests (NHNCERT_SKIP_VAULT=1): nothing was checked against a real Vault"; \
	else \
		set -o pipefail; vault_bin=$$(scripts/vault.sh) && prom_dir=$$(scripts/prometheus.sh) && \
		if [ "$${NHNCERT_SKIP_KUBE:-}" = 1 ] && [ -n "$${CI:-}" ]; then \
			echo "NHNCERT_SKIP_KUBE=1 is refused when CI is set: CI must run the Kubernetes operators"; exit 1; \
		elif [ "$${NHNCERT_SKIP_KUBE:-}" = 1 ]; then \
			echo "SKIPPED: the Kubernetes tier (NHNCERT_SKIP_KUBE=1): nothing is checked against VSO and ESO"; \
		else \
			for p in etcd kube-apiserver vso eso; do scripts/kube.sh $$p >/dev/null || exit 1; done; \
			export NHNCERT_ETCD_BIN=$$(scripts/kube.sh etcd) NHNCERT_KUBE_APISERVER_BIN=$$(scripts/kube.sh kube-apiserver) \
				NHNCERT_VSO_BIN=$$(scripts/kube.sh vso) NHNCERT_ESO_BIN=$$(scripts/kube.sh eso) \
				NHNCERT_VSO_CRDS=$$(scripts/kube.sh crds vso) NHNCERT_ESO_CRDS=$$(scripts/kube.sh crds eso); \
		fi && \
		VAULT_BIN="$$vault_bin" NHNCERT_PROMETHEUS_DIR="$$prom_dir" NHNCERT_PLUGIN_BIN="$(CURDIR)/bin/$(PLUGIN)" NHNCERT_EMULATOR_BIN="$(CURDIR)/bin/nhncert-emulator" \
			$(GO) test -count=1 -timeout 30m -v -skip "$$RELEASE_TESTS" ./integration/ 2>&1 | scripts/test-summary.sh; \
	fi

vet:
	$(GO) vet ./...

# staticcheck, pinned in scripts/staticcheck.sh and installed once into
# $(NHNCERT_CACHE).
lint:
	@scripts/staticcheck.sh ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

demo: build
	@scripts/demo.sh

dev: build
	@scripts/demo.sh --real-nhn

# Load benchmark against a real Vault and the emulator (nhncert vs a null
# plugin vs KV), then the Go benchmarks; prints a table. See BENCHMARKS.md.
bench:
	@scripts/bench.sh

# Many more seeded histories of the model test than `make test` runs (24),
# for SOAK_TIME; a failing one prints its seed (NHNCERT_MODEL_SEED replays).
SOAK_TIME ?= 20m
SOAK_LOG ?= soak.log
soak:
	@echo "full log: $(SOAK_LOG)"
	set -o pipefail; NHNCERT_MODEL_DURATION=$(SOAK_TIME) $(GO) test -race -count=1 -timeout 0 -run '^TestModel$$' -v . | tee $(SOAK_LOG) | grep -E 'model:|I[0-9]+:|FAIL|replay|^ok'

# The chaos run on a 3-node raft Vault (integration/chaos_test.go) for
# CHAOS_TIME of faults; `make test` runs a short one (100 s, a fixed seed)
# within `integration`. CHAOS_SEED replays a seed's nemesis schedule.
CHAOS_TIME ?= 20m
CHAOS_SEED ?=
chaos: build
	set -o pipefail; vault_bin=$$(scripts/vault.sh) && \
	VAULT_BIN="$$vault_bin" NHNCERT_PLUGIN_BIN="$(CURDIR)/bin/$(PLUGIN)" NHNCERT_EMULATOR_BIN="$(CURDIR)/bin/nhncert-emulator" \
	NHNCERT_CHAOS_TIME=$(CHAOS_TIME) NHNCERT_CHAOS_SEED=$(CHAOS_SEED) NHNCERT_CHAOS_LOGS="$(CURDIR)/chaos-logs" \
		$(GO) test -count=1 -timeout 0 -run '^TestChaos$$' -v ./integration/ 2>&1 | tee chaos.log | grep -E 'chaos|nemesis|C[1-7]:|renewal|answers of|plugin pid|background runs|replay|FAIL|^ok|^---'

# The integration suite against the newest patch of each Vault line the
# module proxy serves (scripts/compat.sh); CI keeps the v1.21.0 pin.
compat:
	@scripts/compat.sh

clean:
	rm -rf bin

# The release artifacts of VERSION (given explicitly: the default above is
# the development version the tests register) into dist/, by
# scripts/release.sh; RELEASE_GPG_KEY signs SHA256SUMS, RELEASE_IMAGE
# pushes the image. See docs/install.md.
release:
	@if [ "$(origin VERSION)" = file ]; then echo "make release needs VERSION=vX.Y.Z"; exit 1; fi
	@scripts/release.sh $(VERSION)

# The release smoke that make test runs (scripts/release-check.sh): the
# release tool's tests and the license check, actionlint on the workflows,
# the linux zips built twice (the second from a copy at another path with
# an empty GOCACHE) and compared, then the real-Vault release tests: the
# zip's binary registered and read from, the image opened by skopeo, and
# the upgrade from the release CHANGELOG.md names.
release-check: build
	@scripts/release-check.sh
