# syntax=docker/dockerfile:1
# Build: dependencies first (cached until Cargo.toml/Cargo.lock change), then the service.
# Only the service is built: the workspace's other member (bench/) is a stub that lets Cargo
# read the manifests. Nothing comes from tests/ (demo's bundled events are in fixtures/).
# Base images are pinned: the builder by its exact release tag, the runtime by digest.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY bench/Cargo.toml ./bench/
RUN mkdir -p src bench/src \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > bench/src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked -p gigs-notifier --bin gigs-notifier \
 && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY fixtures ./fixtures
COPY templates ./templates
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked -p gigs-notifier --bin gigs-notifier \
 && mkdir -p /data

# Run: a small image with CA certificates and libc only (no shell, no curl: the HEALTHCHECK is
# the binary itself), as a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
COPY --from=build /src/target/release/gigs-notifier /usr/local/bin/gigs-notifier
COPY --from=build --chown=65532:65532 /data /data
WORKDIR /data
ENV LISTEN_ADDR=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/gigs-notifier.db \
    LOG_FORMAT=json \
    RUST_LOG=info
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["gigs-notifier", "healthcheck"]
CMD ["gigs-notifier", "serve"]
