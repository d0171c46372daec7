# syntax=docker/dockerfile:1
#
# phaseflow: one binary, `phaseflow`, with the subcommands worker, api, migrate and publish.
#
#   docker build -t phaseflow:local .
#   docker run --rm phaseflow:local --help
#
# The build needs no database and no broker: SQL is checked at run time (no compile-time checked
# queries) and the migrations are embedded into the binary with `sqlx::migrate!`. The context
# holds the benchmark's sources (bench/, a member of the Cargo workspace) because the workspace
# lists them, but `--bin phaseflow` builds the service alone.

# ---------------------------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

COPY . .

# The cache mounts keep the crates.io registry and the target directory between builds, so a
# change to the source recompiles only phaseflow, not its dependencies. The binary is copied out
# of the cached target directory in the same step (cache mounts are not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin phaseflow \
 && cp target/release/phaseflow /usr/local/bin/phaseflow

# ---------------------------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a fixed id, so volume permissions and Kubernetes
# `runAsUser`/`runAsNonRoot` policies can rely on it.
RUN groupadd --system --gid 10001 phaseflow \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin phaseflow

COPY --from=builder /usr/local/bin/phaseflow /usr/local/bin/phaseflow

# Settings are read from ./config (default.toml, optional local.toml, workflow.toml), relative to
# the working directory; mount your own over /app/config or set PHASEFLOW_CONFIG_DIR.
WORKDIR /app
COPY config/ /app/config/

USER 10001:10001

# Health and metrics of the worker (PHASEFLOW_OPS_ADDR) and the HTTP API (PHASEFLOW_API_ADDR).
# Both default to 127.0.0.1, which is unreachable from outside the container: set
# PHASEFLOW_OPS_ADDR=0.0.0.0:9090 and PHASEFLOW_API_ADDR=0.0.0.0:8080 when you run it.
EXPOSE 9090 8080

ENTRYPOINT ["phaseflow"]
CMD ["worker"]
