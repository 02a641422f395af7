#!/usr/bin/env bash
# Build the project's Dockerfile and run the image as a host would, where no registry image can be pulled:
# podman builds it on a stand-in for python:3.11-slim-bookworm that mmdebstrap bootstraps from Debian's own
# packages. Then it checks /ready, a transcription, the health check, the non-root user and the drain on
# SIGTERM, and prints the figures (build time, image size, time to ready).
#
#   sudo apt-get install podman runc mmdebstrap && deploy/test-image.sh
#
# pip inside the build uses this machine's pip configuration and any local index or wheel folder it names,
# mounted read-only, and the host's network. Docker's image format keeps the HEALTHCHECK (OCI's has none).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=localhost/asr-test-base:bookworm
IMAGE=localhost/asr:test
NAME=asr-test-$$
PORT=${PORT:-18431}  # not the image's 8000: the health check must follow ASR_PORT
# runc: crun refuses hosts whose cgroups are mounted in hybrid mode. Limits below the host's: a container
# may not raise them where the host runs podman itself inside a sandbox.
RUNTIME=(--runtime runc)
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=1000:1000)

work=$(mktemp -d)
cleanup() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "test-image: $*" >&2; exit 1; }

if ! podman image exists "$BASE"; then
    echo "bootstrapping $BASE from Debian's packages"
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$work/base.tar"
    podman import --quiet "$work/base.tar" "$BASE" >/dev/null
fi

mounts=()
[ -e /etc/pip.conf ] && mounts+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
[ -e /etc/xdg/pip ] && mounts+=(--volume /etc/xdg/pip:/etc/xdg/pip:ro)
[ -e "$HOME/.config/pip/pip.conf" ] && mounts+=(--volume "$HOME/.config/pip/pip.conf:/root/.config/pip/pip.conf:ro")
for path in $(pip config list 2>/dev/null | grep -o "/[^' ]*" | grep -v "^/etc/xdg/pip/" | sed 's#/simple/*$##' | sort -u); do
    [ -e "$path" ] && mounts+=(--volume "$path:$path:ro")  # indexes with their files, wheel folders, certificates
done

started=$(date +%s)
echo "building $IMAGE (the log: $PWD/build/test-image.log)"
mkdir -p build
podman "${RUNTIME[@]}" build --format docker --network host "${LIMITS[@]}" "${mounts[@]}" --build-arg "BASE=$BASE" \
    --tag "$IMAGE" . >build/test-image.log 2>&1 || fail "the build failed: $(tail -5 build/test-image.log)"
build_seconds=$(($(date +%s) - started))
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")

url="http://127.0.0.1:$PORT"
curl --silent "$url" >/dev/null && fail "something already listens on port $PORT, which the container needs"
started=$(date +%s%N)
# podman's complaints that no systemd can time the health check go to a log: the check is run by hand below.
podman "${RUNTIME[@]}" run --detach --name "$NAME" --network host "${LIMITS[@]}" --env "ASR_PORT=$PORT" "$IMAGE" \
    >/dev/null 2>>"$work/podman.log"
for _ in $(seq 600); do
    curl --silent --fail "$url/ready" >/dev/null && break
    [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || fail "the container exited: $(podman logs "$NAME" 2>&1 | tail -5)"
    sleep 0.2
done
curl --silent --fail "$url/ready" >/dev/null || fail "not ready after 120 s"
ready_ms=$((($(date +%s%N) - started) / 1000000))

espeak-ng -w "$work/speech.wav" "turn off the kitchen lights"
text=$(curl --silent --fail --data-binary "@$work/speech.wav" "$url/v1/transcribe" | python3 -c "import json, sys; print(json.load(sys.stdin)['text'])")
[ -n "$text" ] || fail "an empty transcript"
podman healthcheck run "$NAME" 2>>"$work/podman.log" || fail "the health check failed"
user=$(podman exec "$NAME" id -u)
[ "$user" = 10001 ] || fail "the server runs as user $user, not 10001"

podman stop --time 40 "$NAME" >/dev/null 2>>"$work/podman.log"
status=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$status" = 0 ] || fail "SIGTERM ended the server with status $status, not 0"
podman logs "$NAME" 2>&1 | grep -q "Application shutdown complete" || fail "no graceful shutdown in the log"

printf '{"build_seconds": %s, "image_bytes": %s, "ready_ms": %s, "transcript": "%s", "user": %s, "exit_status": %s}\n' \
    "$build_seconds" "$size" "$ready_ms" "$text" "$user" "$status"
