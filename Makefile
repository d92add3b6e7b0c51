# anytime-edge: `make run` does the main job, `make test` checks everything.
# Both install what they need (Debian packages, the ONNX Runtime CPU library)
# on a fresh machine; nothing downloads at run time.

PYTHON ?= /usr/bin/python3
GO     ?= go
BIN    := bin/edge
export EDGE_ORT_LIB ?= $(CURDIR)/.deps/libonnxruntime.so.1
# The masking kernels have an AVX2 path behind Go's SIMD experiment.
ifeq ($(shell $(GO) env GOARCH),amd64)
export GOEXPERIMENT := simd
endif

# staticcheck, pinned; make setup installs it from the Go module proxy into
# .deps/ (a new version goes to a new folder, so bumping it reinstalls).
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := $(CURDIR)/.deps/staticcheck-$(STATICCHECK_VERSION)/staticcheck

.PHONY: setup build jetson test test-go test-metrics test-python test-e2e crosscheck run bench lint clean

setup: $(STATICCHECK)
	scripts/setup-deps.sh
	scripts/setup-ort.sh

$(STATICCHECK):
	GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

build:
	$(GO) build -o $(BIN) ./cmd/edge

# The Jetson binary: linux/arm64 with cgo, cross-compiled with Debian's
# gcc-aarch64-linux-gnu (go-nvml's headers warn about deprecated calls).
jetson:
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc CGO_CFLAGS="-O2 -Wno-deprecated-declarations" \
		$(GO) build -trimpath -o bin/edge-linux-arm64 ./cmd/edge

test: setup build test-go test-metrics test-python crosscheck jetson

# Every package's tests run under the race detector (the packages with
# goroutines need it; the others cost seconds more).
test-go:
	$(GO) vet ./...
	$(GO) test -race ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/edge

# promtool (Debian's prometheus, from make setup) lints a live /metrics page;
# here a missing promtool fails instead of skipping.
test-metrics:
	EDGE_REQUIRE_PROMTOOL=1 $(GO) test -count=1 -run TestMetricsFollowPrometheusConventions ./telemetry

test-python:
	$(PYTHON) -m unittest discover -s models/adpc/tests -t .

# The live view in headless Chromium; the screenshot lands in out/e2e.
test-e2e: setup
	mkdir -p out/e2e
	E2E_OUT=$(CURDIR)/out/e2e $(GO) test -count=1 -run TestLiveViewEndToEnd -v ./cmd/edge

crosscheck: build
	$(PYTHON) -m models.adpc.crosscheck --edge $(BIN)

# The main job: the default bundle over the sample frames in a loop, with the
# embedded MQTT broker, the live view and Prometheus metrics. Ctrl-C stops it.
RUN_BUNDLE ?= models/zoo/fashion-seg-adpc
RUN_INPUT  ?= models/zoo/samples/scene-*.png
run: setup build
	@echo "== edge run: $(RUN_BUNDLE) over $(RUN_INPUT), looping; Ctrl-C stops =="
	@echo "   live view:  http://127.0.0.1:8080/"
	@echo "   results:    mosquitto_sub -h 127.0.0.1 -t 'anytime/#' -v"
	@echo "   metrics:    http://127.0.0.1:9464/metrics"
	$(BIN) --log-format text run --bundle $(RUN_BUNDLE) --loop --fps 10 --http 127.0.0.1:8080 \
		--metrics 127.0.0.1:9464 --site demo --device edge-1 '$(RUN_INPUT)'

bench:
	$(GO) test -run '^$$' -bench . -benchtime 50x -cpu 1 ./masking/

lint: $(STATICCHECK)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...

clean:
	rm -rf bin out
