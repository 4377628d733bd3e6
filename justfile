# Roro's recipes. `ci/just RECIPE` runs them on a fresh machine (it installs just when missing);
# where just is installed, `just RECIPE` is the same.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Gio builds without Vulkan headers; Wayland stays in (see README "Building by hand").
tags := "novulkan"

# List the recipes
default:
    @just --list --unsorted

# Build roro and open its window on the demo workspace (starting the sandbox cluster when you have none)
run *ARGS: build
    ci/run-app {{ARGS}}

# Run every test against a real local control plane (started here, torn down after)
test *ARGS:
    ci/test {{ARGS}}

# Run the benchmarks against the local control plane and print their figures
bench *ARGS:
    ci/bench {{ARGS}}

# Rewrite the README's benchmark figures from ci/bench's output (bench.out, or the file given; -print to only show them)
bench-tables *ARGS:
    ci/bench-tables {{ARGS}}

# Fuzz whole hostile workspaces through load, validate and render (FUZZTIME, default 5m)
fuzz:
    ci/fuzz

# Build bin/roro
build: deps
    go build -tags {{tags}} -o bin/roro .

# Install the Debian packages the build and the tests need (quick when all are present)
deps:
    ci/deps

# Start the local test control plane (or reuse the running one) and print its exports
cluster-up: deps
    ci/cluster up
    @ci/cluster env

# Stop the local test control plane and remove its state
cluster-down:
    ci/cluster down

# Check formatting (gofmt) and run go vet
lint: deps
    ci/lint
