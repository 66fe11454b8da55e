#!/usr/bin/env bash
# Docker for the container tests (issue 12): Debian's docker.io and busybox-static, a Docker
# daemon that answers, and the tests' own image. No registry can be reached where the tests run,
# so the image is made here from a root folder, the same folder internal/dockertest's RootFS
# writes as a tar (that package imports it itself when it is missing; either way it is the same
# image). .ci/run sources this file and calls its functions; `bash .ci/docker.sh` runs them alone.
#
# The daemon is the default one (/var/run/docker.sock): DOCKER_HOST is left as it is, so a
# caller that names another daemon gets that one.

# docker_image_name is the tests' image (internal/dockertest.Image).
docker_image_name=flowd-test/busybox:1

# docker_packages_missing prints the Debian packages the container tests need and this machine
# lacks, one a line: docker.io (dockerd and docker) and busybox-static (a static /bin/busybox:
# Debian's plain busybox is linked dynamically and cannot run in the image).
docker_packages_missing() {
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    echo docker.io
  fi
  if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" != "install ok installed" ]; then
    echo busybox-static
  fi
}

# docker_answers says whether a daemon answers, the server part of `docker version` included.
docker_answers() {
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# docker_start_daemon starts dockerd when no daemon answers, in a session of its own so that it
# outlives this script, logging to /tmp/dockerd.log, and waits up to 60 s (DOCKERD_WAIT) for it to
# answer. It fails with the log's tail if it never does. A dockerd already running but not yet answering
# (starting) is waited for, not started twice.
docker_start_daemon() {
  docker_answers && return 0
  if pgrep -x dockerd >/dev/null 2>&1; then
    echo "== waiting for the running dockerd to answer"
  else
    echo "== starting dockerd (log: /tmp/dockerd.log)"
    setsid -f dockerd >/tmp/dockerd.log 2>&1 </dev/null
  fi
  local _ wait=${DOCKERD_WAIT:-60}
  for _ in $(seq 1 "$wait"); do
    docker_answers && return 0
    sleep 1
  done
  echo "dockerd did not answer in $wait s; the end of /tmp/dockerd.log:" >&2
  tail -n 30 /tmp/dockerd.log >&2 || true
  docker version >&2 || true
  return 1
}

# docker_import_image [IMAGE] imports the tests' image (IMAGE, by default flowd-test/busybox:1)
# unless the daemon has it: a root folder holding /bin/busybox and a link to it per applet, empty
# /tmp (1777) and /workspace, and /etc/passwd and /etc/group naming root and nobody, with
# PATH=/bin. Keep it the same as RootFS in internal/dockertest/dockertest.go.
docker_import_image() {
  local image=${1:-$docker_image_name}
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  echo "== importing $image"
  local root applet
  root=$(mktemp -d)
  chmod 0755 "$root"
  mkdir -m 0755 "$root/bin" "$root/workspace" "$root/etc"
  mkdir -m 1777 "$root/tmp"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
  for applet in $(/bin/busybox --list); do
    case $applet in busybox | */*) continue ;; esac
    ln -s busybox "$root/bin/$applet"
  done
  local rc=0
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
    docker import -c 'ENV PATH=/bin' - "$image" >/dev/null || rc=$?
  rm -rf "$root"
  return $rc
}

# Run alone (`bash .ci/docker.sh`): install what is missing, start the daemon, import the image.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  mapfile -t missing < <(docker_packages_missing)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  docker_start_daemon
  docker_import_image
fi
