# Hangar — build, run and test. `make run` and `make test` are the two
# commands a newcomer needs; both work on a fresh machine.
SHELL    := /bin/bash
.SHELLFLAGS := -o pipefail -ec
GO       ?= go
BIN      ?= bin/hangar
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
DATA     ?= ./hangar-data
NFS_LISTEN ?= 127.0.0.1:20490
CSI_ENDPOINT ?= unix://$(abspath $(DATA))/csi.sock
# Pinned so lint gives the same answer on every machine; `go run` fetches and
# caches it from the module proxy on first use.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages with shared state across goroutines: run under the race detector.
RACE_PKGS ?= ./pkg/nfs/... ./pkg/volume/... ./pkg/driver/... ./pkg/server/... ./pkg/fileutil/...

.PHONY: all build image run test lint unit race sanity e2e e2e-quick e2e-k8s e2e-cluster k8s-tools manifests bench bench-smoke bench-abuse bench-control fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hangar

# Container images as OCI image-layout tarballs, no Docker needed: Hangar's
# (the static binary, as the Dockerfile's final stage) and, for test
# clusters, a pause image and a busybox image (Debian's busybox-static).
# Load with `docker load`, `podman load` or `ctr images import`.
IMAGE    ?= ghcr.io/hangar-csi/hangar:$(VERSION)
IMAGES   ?= bin/images
BUSYBOX  ?= /bin/busybox
image: build
	@mkdir -p $(IMAGES)
	cd build/image && $(GO) run . -ref $(IMAGE) -out $(abspath $(IMAGES))/hangar.tar \
	  -file $(abspath $(BIN)):/usr/local/bin/hangar -entrypoint /usr/local/bin/hangar -user 65532:65532
	cd build/image && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(abspath $(IMAGES))/pause ./pause
	cd build/image && $(GO) run . -ref hangar.test/pause:1 -out $(abspath $(IMAGES))/pause.tar \
	  -file $(abspath $(IMAGES))/pause:/pause -entrypoint /pause -user 65535:65535
	@file -L $(BUSYBOX) | grep -q 'statically linked' || { echo "$(BUSYBOX) is not a static busybox: apt-get install busybox-static"; exit 1; }
	cd build/image && $(GO) run . -ref hangar.test/busybox:1 -out $(abspath $(IMAGES))/busybox.tar -file $(BUSYBOX):/bin/busybox \
	  $$($(BUSYBOX) --list | grep -vx busybox | sed 's|.*|-symlink /bin/&:busybox|')
	@ls -l $(IMAGES)/*.tar

# All-in-one: storage server + CSI controller + node on this machine.
run: build
	$(BIN) run --data $(DATA) --nfs-listen $(NFS_LISTEN) --csi-endpoint $(CSI_ENDPOINT)

# Everything CI runs: static checks, unit + protocol + attack tests with fuzz
# seeds, the concurrent packages again under -race, csi-sanity, the benchmark tooling smoke, every case of the
# real-kernel VM suite, the Kubernetes packaging e2e and the cluster suite
# (pods on kubelet nodes in VMs), last because it is the longest.
test: lint unit race sanity bench-smoke e2e e2e-k8s e2e-cluster

lint:
	@out=$$(gofmt -l cmd pkg test); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@for m in . test/bench/gonfs build/image; do (cd $$m && $(GO) mod tidy -diff) || { echo "go.mod/go.sum of $$m are not tidy: run go mod tidy there"; exit 1; }; done

unit:
	./test/install-fs-tools.sh
	$(GO) test -count=1 ./cmd/... ./pkg/... ./test/bench/...
	cd build/image && $(GO) test -count=1 ./...

race:
	$(GO) test -race -count=1 $(RACE_PKGS)

sanity:
	$(GO) test -count=1 -v ./test/sanity/...

e2e-quick: build
	HANGAR_E2E=quick HANGAR_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 30m -v ./test/e2e

e2e: build
	HANGAR_E2E=all HANGAR_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 60m -v ./test/e2e

# Kubernetes packaging against a real control plane. The first run builds the Kubernetes binaries
# into ~/.cache/hangar/k8s (minutes); later runs reuse them.
e2e-k8s:
	$(GO) test -count=1 -timeout 40m -v -run 'TestKubernetes|TestManifests' ./test/e2e/k8s/

# A cluster with kubelet nodes in two QEMU guests, the chart installed with
# helm and images built here, real pods using volumes
# (test/e2e/k8s/nodes_test.go, pods_test.go). The first run builds kubelet,
# kube-scheduler and containerd into ~/.cache/hangar/node (minutes).
e2e-cluster:
	HANGAR_CLUSTER=1 $(GO) test -count=1 -timeout 75m -v -run TestNodes ./test/e2e/k8s/

# Only build (or check the cache of) the Kubernetes binaries e2e-k8s uses.
k8s-tools:
	./test/e2e/k8s/build.sh

# Regenerate deploy/hangar.yaml from charts/hangar.
manifests:
	./deploy/render.sh

bench: build
	HANGAR_BIN=$(abspath $(BIN)) ./test/bench/run.sh
	HANGAR_BIN=$(abspath $(BIN)) ./test/bench/kernel.sh
	WHERE=guest HANGAR_BIN=$(abspath $(BIN)) ./test/bench/kernel.sh
	$(MAKE) --no-print-directory bench-abuse
	$(MAKE) --no-print-directory bench-control

# The control plane at 0 to 100k volumes (about 4 minutes; CTL_SIZES=0,1000,10000
# for a shorter run): CreateVolume/DeleteVolume/ListVolumes/GetCapacity p50/p99
# through the CSI socket with 8 concurrent callers, memory and fds per volume,
# restart time. See test/bench/README.md.
CTL_SIZES ?= 0,1000,10000,100000
bench-control: build
	$(GO) run ./test/bench/ctlbench -hangar $(abspath $(BIN)) -sizes $(CTL_SIZES)

# The benchmark tooling end to end at small sizes: fails if the load
# generator reads data it did not write. Not a speed test.
bench-smoke: build
	QUICK=1 ALLOCS=0 HANGAR_BIN=$(abspath $(BIN)) ./test/bench/run.sh
	$(GO) run ./test/bench/ctlbench -hangar $(abspath $(BIN)) -sizes 0,100 -sample 50 -deletes 20 -calls 20

# A well-behaved client's NULL latency (p50/p99) and the server's heap and
# RSS growth while 100 connections of each abusive kind hold on: not reading
# replies, idle, trickling a record, a partial 1 MiB record. Prints numbers.
bench-abuse:
	$(GO) test -run '^$$' -bench ServeUnderAbuse -benchtime 2000x ./pkg/nfs/rpc/

fuzz:
	@for p in ./pkg/nfs/rpc ./pkg/nfs/nfs3 ./pkg/nfs/nfs4 ./pkg/nfs/mount ./pkg/volume/localfs; do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$p || exit 1; done; done

clean:
	rm -rf bin
