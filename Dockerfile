# syntax=docker/dockerfile:1
#
# Container image of the crbpf daemon (checkpoint/restart of Linux processes,
# with eBPF write tracking).
#
#   docker build -t crbpf --build-arg VERSION=$(git describe --tags --always) .
#
# Running it. crbpf checkpoints and restarts *host* processes, so the
# container must be nearly as privileged as root on the host:
#
#   docker run -d --name crbpf \
#     --privileged \
#     --pid=host \
#     -v /sys/kernel/tracing:/sys/kernel/tracing \
#     -v /sys/fs/bpf:/sys/fs/bpf \
#     -v /run/crbpf:/run/crbpf \
#     -v /var/lib/crbpf:/var/lib/crbpf \
#     -p 9464:9464 \
#     crbpf
#
#   --privileged   all capabilities, no seccomp/AppArmor filtering. Narrower
#                  equivalent:
#                    --cap-add SYS_PTRACE --cap-add SYS_ADMIN --cap-add BPF
#                    --cap-add PERFMON --cap-add SYS_RESOURCE
#                    --cap-add CHECKPOINT_RESTORE --cap-add SYS_NICE
#                    --security-opt seccomp=unconfined
#                    --security-opt apparmor=unconfined
#                  because crbpf uses ptrace (stop, read and rebuild a
#                  target: SYS_PTRACE), userfaultfd write-protect and the
#                  PAGEMAP_SCAN ioctl (dirty pages between pre-copy rounds),
#                  bpf() and perf_event_open() to load and attach the
#                  write-tracking tracepoint programs (BPF, PERFMON; SYS_ADMIN
#                  before Linux 5.8), prctl(PR_SET_MM_MAP) to restore a
#                  process's memory layout and exe link (CHECKPOINT_RESTORE;
#                  SYS_RESOURCE and SYS_ADMIN before Linux 5.9) and setrlimit
#                  above its own limits (SYS_RESOURCE); SYS_NICE lets the
#                  final freeze run at a real-time priority (without it the
#                  freeze works, longer on a busy machine). Docker's seccomp
#                  profile filters userfaultfd, bpf and perf_event_open
#                  (older Docker releases block them whatever the
#                  capabilities), and its AppArmor profile denies ptrace of
#                  processes outside the container.
#   --pid=host     share the host's PID namespace, to see and ptrace the
#                  host's processes (crbpf checkpoint PID takes host PIDs).
#   -v /sys/kernel/tracing:/sys/kernel/tracing
#                  tracefs: tracepoint IDs are only published there. Without
#                  it crbpf tries to mount tracefs itself (needs SYS_ADMIN);
#                  on old kernels mount debugfs instead
#                  (-v /sys/kernel/debug:/sys/kernel/debug).
#   -v /sys/fs/bpf:/sys/fs/bpf
#                  optional: the host's bpffs, to inspect BPF objects with
#                  bpftool from the host.
#   -v /run/crbpf:/run/crbpf
#                  shares the daemon's socket (/run/crbpf/crbpf.sock) and its
#                  ready file (/run/crbpf/ready) with clients on the host.
#   -v /var/lib/crbpf:/var/lib/crbpf
#                  the crid counter's state directory: keeps crids increasing
#                  across container restarts and shared with crbpf CLI runs
#                  on the host.
#   -p 9464:9464   Prometheus metrics on /metrics (deploy/prometheus/).
#
# A restarted process runs in the daemon's mount namespace, i.e. inside this
# container: the regular files and directories it had open must exist at
# the same paths here (bind-mount them), and it is the daemon's child.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that source edits do not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# The bpf2go outputs (loader/track_bpfel.go, loader/track_bpfel.o) are
# committed: no clang, no go generate. CGO_ENABLED=0 gives a static binary.
ARG VERSION=""
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-X main.version=${VERSION}" \
      -o /out/crbpf ./cmd/crbpf

# Restart execs a one-page stub crbpf writes into a memfd; ptrace, bpf,
# userfaultfd and PR_SET_MM are syscalls. Nothing else is needed at run time.
FROM debian:bookworm-slim
ARG VERSION=""
LABEL org.opencontainers.image.title="crbpf" \
      org.opencontainers.image.description="Checkpoint/restart tool for Linux processes, with eBPF write tracking" \
      org.opencontainers.image.source="https://github.com/crbpf/crbpf" \
      org.opencontainers.image.url="https://github.com/crbpf/crbpf" \
      org.opencontainers.image.documentation="https://github.com/crbpf/crbpf/tree/main/deploy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
COPY --from=build /out/crbpf /usr/local/bin/crbpf
RUN mkdir -p /run/crbpf /var/lib/crbpf
ENV CRBPF_STATE_DIR=/var/lib/crbpf
VOLUME ["/run/crbpf", "/var/lib/crbpf"]
EXPOSE 9464
# The daemon must run as root (see the capabilities above).
ENTRYPOINT ["/usr/local/bin/crbpf"]
CMD ["daemon", "--socket", "/run/crbpf/crbpf.sock", "--metrics-addr", "0.0.0.0:9464", "--ready-file", "/run/crbpf/ready"]
