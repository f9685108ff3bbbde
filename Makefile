# Targets: test (vet, race tests, integration), integration, fuzz, build, fmt, clean.

GO       ?= go
FUZZTIME ?= 60s
# The race detector needs cgo (a C compiler); .ci/run sets RACE= without one.
RACE     ?= -race

.PHONY: all test integration fuzz build fmt clean

all: build

# vet, then the unit tests under the race detector, then the integration suite.
test:
	$(GO) vet ./...
	$(GO) test $(RACE) ./...
	$(MAKE) integration

# Tests built with the "integration" tag whose names contain Integration.
# Passes when there are none.
integration:
	$(GO) test -count=1 -run Integration -tags integration ./...

# Runs every fuzz target for FUZZTIME, one at a time: make fuzz FUZZTIME=10s
fuzz:
	@list=$$($(GO) test -list '^Fuzz' ./...) || { echo "$$list"; exit 1; }; \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { f[n++] = $$1; next } /^(ok|\?) / { for (i = 0; i < n; i++) print $$2 "," f[i]; n = 0 }'); \
	if [ -z "$$targets" ]; then echo "no fuzz targets"; exit 0; fi; \
	for t in $$targets; do \
		pkg=$${t%%,*}; fn=$${t#*,}; \
		echo "== $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

build:
	$(GO) build -o bin/pool ./cmd/pool

# Fails listing the files gofmt would change.
fmt:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

clean:
	rm -rf bin
