# Makefile - wraps CMake; see README.md.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build check test demo bench-core install clean

all: build

deps:
	@scripts/deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

clean:
	rm -rf build build-*
