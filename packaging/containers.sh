#!/usr/bin/env bash
# VitalCheck's container environment for Debian's buildah and podman, without a Docker engine.
#
#   source packaging/containers.sh            # sets the variables below in the current shell
#   packaging/containers.sh podman images     # runs one command with them
#
# Everything lives in a private store (VITALCHECK_IMAGE_STATE, default /var/lib/vitalcheck-image):
# the vfs storage driver (no overlay or fuse needed), chroot isolation for builds, and
# packaging/containers.conf (runc with ulimits the host allows, cgroupfs, file events).
# Being private matters: the locally made base image is tagged with the name the generated
# Dockerfile pulls (python:3.11-slim), which must not shadow a real one in a shared store.

_vc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VITALCHECK_IMAGE_STATE=${VITALCHECK_IMAGE_STATE:-/var/lib/vitalcheck-image}
export CONTAINERS_CONF=$_vc_root/packaging/containers.conf
export CONTAINERS_STORAGE_CONF=$VITALCHECK_IMAGE_STATE/storage.conf
export BUILDAH_ISOLATION=chroot
export BUILDAH_FORMAT=oci

mkdir -p "$VITALCHECK_IMAGE_STATE"
if [[ ! -s $CONTAINERS_STORAGE_CONF ]]; then
    # One run root per store (a run root shared by two stores would mix their locks).
    _vc_run=/run/vitalcheck-image/$(realpath "$VITALCHECK_IMAGE_STATE" | sha256sum | cut -c1-12)
    cat >"$CONTAINERS_STORAGE_CONF" <<CONF
# Written by packaging/containers.sh: VitalCheck's private image store.
[storage]
driver = "vfs"
graphroot = "$VITALCHECK_IMAGE_STATE/storage"
runroot = "$_vc_run"
CONF
    unset _vc_run
fi
unset _vc_root

# Executed rather than sourced: run the given command in this environment.
if [[ ${BASH_SOURCE[0]} == "$0" && $# -gt 0 ]]; then
    exec "$@"
fi
