# The broker node image: `millrace-agent` (the container entrypoint) and the broker binaries it
# can run, one directory per version, all in one bin dir:
#   /opt/millrace/bin/millrace-agent
#   /opt/millrace/bin/<version>/millrace-broker
# where <version> is what the broker's `--version` reports, `millrace-broker 0.1.0` becoming
# `millrace-0.1.0` (broker-agent's `parse_version_output`; the agent looks a version up with
# `find_broker_binary(--bin-dir, --broker-version)`). The kubernetes platform runs
# `<agent bin dir>/millrace-agent --bin-dir <agent bin dir>` (`millrace serve
# --agent-bin-dir`, default /opt/millrace/bin) and offers the versions of `--broker-versions`
# (default: the version built with the control plane). Build from the repository root:
#   docker build -f deploy/docker/broker-agent.Dockerfile -t millrace/broker-agent:0.1.0 .
# To carry an older version as well, copy its directory from the previous image into the
# runtime stage, e.g.
#   COPY --from=millrace/broker-agent:0.0.9 /opt/millrace/bin/millrace-0.0.9 /opt/millrace/bin/millrace-0.0.9

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p millrace-broker-agent --bin millrace-agent \
        -p millrace-broker --bin millrace-broker \
    && install -D -m 0755 target/release/millrace-agent /out/bin/millrace-agent \
    && version="millrace-$(target/release/millrace-broker --version | awk '{print $2}')" \
    && case "$version" in millrace-[0-9]*) ;; *) echo "unexpected broker version $version" >&2; exit 1;; esac \
    && install -D -m 0755 target/release/millrace-broker "/out/bin/$version/millrace-broker"

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 millrace \
    && useradd --system --uid 10001 --gid millrace --home-dir /var/lib/millrace millrace \
    && install -d -o millrace -g millrace -m 0750 /var/lib/millrace
COPY --from=build /out/bin/ /opt/millrace/bin/
USER 10001:10001
# The node's volume (a PersistentVolumeClaim or an emptyDir) is mounted at the data dir.
ENV MILLRACE_BIN_DIR=/opt/millrace/bin \
    MILLRACE_DATA_DIR=/var/lib/millrace
# Kafka listener, controller (quorum) listener, broker admin endpoint, agent API.
EXPOSE 9092 9093 9644 9700
ENTRYPOINT ["/opt/millrace/bin/millrace-agent"]
