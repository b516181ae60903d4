# The control plane image: `millrace serve` (REST API, store, reconciler, platforms, CRD
# controller). Build from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t millrace/control-plane:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace: Cargo.lock names every member, and the migrations are embedded into the
# binary at compile time (sqlx::migrate!).
COPY . .
RUN cargo build --release --locked -p millrace-control-plane --bin millrace \
    && install -D -m 0755 target/release/millrace /out/millrace

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 millrace \
    && useradd --system --uid 10001 --gid millrace --home-dir /var/lib/millrace millrace \
    && install -d -o millrace -g millrace -m 0750 /var/lib/millrace
COPY --from=build /out/millrace /usr/local/bin/millrace
USER 10001:10001
ENV MILLRACE_LISTEN=0.0.0.0:8080 \
    MILLRACE_DATA_DIR=/var/lib/millrace
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/millrace"]
CMD ["serve"]
