# syntax=docker/dockerfile:1
# Container images of the KubeFlex binaries, one target each:
#   docker build --target operator   -t kubeflex-operator .
#   docker build --target reconciler -t kubeflex-reconciler .
#   docker build --target kflex      -t kflex .
# Not built on the development machines (they have no container engine);
# operator/tests/chart.rs checks the binary names and paths against the
# workspace.

# The toolchain the test suite runs with (the workspace's rust-version is
# the oldest it claims to build with).
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# aws-lc-sys (rustls' crypto provider) builds its C sources with cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Every workspace member: cargo resolves the whole workspace to build any of it.
COPY Cargo.toml Cargo.lock ./
COPY operator operator
COPY reconciler reconciler
COPY cli cli
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        --bin kubeflex-operator --bin kubeflex-reconciler --bin kflex \
 && mkdir -p /out \
 && cp target/release/kubeflex-operator target/release/kubeflex-reconciler target/release/kflex /out/

# The operator needs only libc and CA certificates.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/kubeflex-operator /usr/local/bin/kubeflex-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kubeflex-operator"]
CMD ["run"]

# The reconciler runs ssh (through sh) for ssh:// and scp-style Git URLs.
FROM docker.io/library/debian:bookworm-slim AS reconciler
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/kubeflex-reconciler /usr/local/bin/kubeflex-reconciler
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["/usr/local/bin/kubeflex-reconciler"]

FROM gcr.io/distroless/cc-debian12:nonroot AS kflex
COPY --from=build /out/kflex /usr/local/bin/kflex
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kflex"]
