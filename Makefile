# Targets: test (vet, race tests, integration), integration, fuzz, build, shim, fmt, clean.

GO       ?= go
FUZZTIME ?= 60s
# The race detector needs cgo (a C compiler); .ci/run sets RACE= without one.
RACE     ?= -race
CC       ?= cc
# The shim is C: the system compiler, every warning an error.
SHIM_CFLAGS ?= -O2 -Wall -Wextra -Werror

.PHONY: all test integration fuzz build shim shim-if-cc fmt clean

all: build

# vet, then the unit tests under the race detector, then the integration suite.
test: shim-if-cc
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

# libpoolshim.so, the LD_PRELOAD shim (docs/OPERATIONS.md), and its C test
# program. The Go tests of internal/shimd build their own copies.
shim: bin/libpoolshim.so bin/shimtest

bin/libpoolshim.so: shim/poolshim.c
	@mkdir -p bin
	$(CC) $(SHIM_CFLAGS) -fPIC -shared -o $@ shim/poolshim.c -ldl -lpthread

bin/shimtest: shim/test/shimtest.c
	@mkdir -p bin
	$(CC) $(SHIM_CFLAGS) -o $@ shim/test/shimtest.c

# "make test" builds the shim where a C compiler exists; a Go-only machine
# skips it (and the shim tests skip, saying why).
shim-if-cc:
	@if command -v $(CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory shim; \
	else echo "note: no C compiler ($(CC)): not building the shim; its tests will skip"; fi

# Fails listing the files gofmt would change.
fmt:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

clean:
	rm -rf bin
