#!/usr/bin/env bash
# Build VitalCheck's OCI image on a host WITHOUT a Docker engine or container-registry access,
# with Debian's buildah (build) and podman (run), from the Bento that `bentoml build` makes.
# (With Docker, the same image is simply `bentoml containerize vitalcheck:latest`; see
# docs/SHIPPING.md.)
#
#   packaging/build_image.sh            # = make image
#
# Steps, each reused when its result is already there:
#   1. tools   buildah, podman, runc, debootstrap (apt-get install when missing and root)
#   2. bento   import_models.py + bentoml build (into $BENTOML_HOME, default ~/bentoml);
#              the Bento's package lock is checked against .venv (packaging/bento_image.py)
#   3. base    the generated Dockerfile starts FROM python:3.11-slim, which cannot be pulled
#              here; instead a Debian bookworm minbase root with python3 (3.11, like .venv)
#              is made with debootstrap, imported with podman, and tagged with that name in
#              VitalCheck's private image store (packaging/containers.sh)
#   4. image   bentoml containerize --backend buildah (chroot isolation, vfs storage), tagged
#              localhost/vitalcheck:<bento version> and :latest; skipped when an image with the
#              same content fingerprint (source, lock, models, base) exists
#
# Environment: BENTOML_HOME; VITALCHECK_IMAGE_STATE (store and base rootfs, default
# /var/lib/vitalcheck-image); DEBIAN_MIRROR (default http://deb.debian.org/debian);
# VITALCHECK_BUILD_CA_BUNDLE (CA bundle mounted read-only while building, for hosts whose
# HTTPS goes through an intercepting proxy; default the host's own bundle; never in the image);
# VITALCHECK_IMAGE_FORCE=1 rebuilds the image, VITALCHECK_BASE_FORCE=1 remakes the base;
# the newest VITALCHECK_IMAGE_KEEP (default 2) images are kept, older ones pruned.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=packaging/containers.sh
source packaging/containers.sh

PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BENTOML=${BENTOML:-$ROOT/.venv/bin/bentoml}
export BENTOML_DO_NOT_TRACK=True
IMAGE=${VITALCHECK_IMAGE:-localhost/vitalcheck}
BASE_IMAGE=docker.io/library/python:3.11-slim   # the FROM of the generated Dockerfile
BASE_ROOTFS=$VITALCHECK_IMAGE_STATE/bookworm-python3-rootfs.tar
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${VITALCHECK_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# Where that bundle is mounted during the build only. The base image's SSL_CERT_FILE (uv) and
# PIP_CERT (pip) point there, and the final image drops both variables (--unsetenv). Mounting
# over the image's own bundle instead breaks when apt upgrades ca-certificates in the build.
BUILD_CA=/run/vitalcheck-build/ca-certificates.crt
# What the base holds beyond minbase: Python 3.11 and pip (the Dockerfile pip-installs uv).
BASE_PACKAGES=python3,python3-pip,ca-certificates
# The base's configuration, as `podman import --change` instructions. The generated Dockerfile
# extends PATH with ${PATH}, so the base must define it.
BASE_CHANGES=(
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'ENV LANG=C.UTF-8'
    "ENV SSL_CERT_FILE=$BUILD_CA"
    "ENV PIP_CERT=$BUILD_CA"
    'CMD ["python3"]'
)

log() { printf '\n==> %s\n' "$*" >&2; }
seconds() { date +%s; }

# 1. Tools --------------------------------------------------------------------------------------
ensure_tools() {
    local missing=()
    for tool in buildah podman runc debootstrap; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) && return
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "missing: ${missing[*]}; install buildah podman runc debootstrap (Debian/Ubuntu packages)" >&2
        exit 1
    fi
    log "installing buildah, podman, runc, debootstrap (apt-get)"
    apt-get update -qq
    # netavark + iptables: the bridge network behind `podman run -p`.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        buildah podman runc conmon netavark aardvark-dns iptables uidmap debootstrap >/dev/null
}

# 2. Bento --------------------------------------------------------------------------------------
build_bento() {
    log "importing the models and building the Bento (BENTOML_HOME=${BENTOML_HOME:-~/bentoml})"
    "$PYTHON" import_models.py >&2
    local out
    out=$("$BENTOML" build --output tag)
    BENTO_TAG=${out##*__tag__:}
    BENTO_TAG=${BENTO_TAG%%[[:space:]]*}
    BENTO_DIR=$("$PYTHON" packaging/bento_image.py path "$BENTO_TAG")
    echo "bento: $BENTO_TAG ($BENTO_DIR)" >&2
    "$PYTHON" packaging/bento_image.py lock-check "$BENTO_TAG" >&2
}

# 3. Base image ---------------------------------------------------------------------------------
make_rootfs() {
    # debootstrap into a scratch folder, trim it, and keep it as a tarball for later imports.
    local work=$VITALCHECK_IMAGE_STATE/rootfs.tmp
    rm -rf "$work" && mkdir -p "$work"
    log "debootstrap bookworm minbase + $BASE_PACKAGES from $DEBIAN_MIRROR (a few minutes)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$work" "$DEBIAN_MIRROR" >&2
    local security=${DEBIAN_MIRROR%/debian}/debian-security
    cat >"$work/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $security bookworm-security main
EOF
    # python:3.11-slim's pip installs into the system Python; Debian marks its Python as
    # externally managed (PEP 668), which would refuse the Dockerfile's `pip install uv`.
    rm -f "$work"/usr/lib/python3*/EXTERNALLY-MANAGED
    # As in Debian's official slim images (which python:3.11-slim extends): apt keeps no
    # downloaded packages or binary caches, and dpkg installs no manuals, docs (copyright files
    # excepted) or translations, so the Dockerfile's apt-get install stays small.
    cat >"$work/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
EOF
    cat >"$work/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    # The same trim for what debootstrap installed; no package lists (the Dockerfile updates them).
    find "$work/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$work"/usr/share/man/* "$work"/usr/share/info/* "$work"/usr/share/lintian/*
    find "$work/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin "$work"/var/cache/apt/archives/*.deb
    tar --numeric-owner -C "$work" -cf "$BASE_ROOTFS.part" .
    mv "$BASE_ROOTFS.part" "$BASE_ROOTFS"
    rm -rf "$work"
}

ensure_base() {
    # The recipe identifies how the base is made (packages, mirror, make_rootfs, image
    # settings); a base or rootfs tarball made another way is remade.
    BASE_RECIPE=$( (echo "$BASE_PACKAGES $DEBIAN_MIRROR" && declare -f make_rootfs && printf '%s\n' "${BASE_CHANGES[@]}") |
        sha256sum | cut -c1-16)
    local recipe=""
    podman image exists "$BASE_IMAGE" &&
        recipe=$(podman image inspect --format '{{index .Labels "org.vitalcheck.base-recipe"}}' "$BASE_IMAGE")
    if [[ ${VITALCHECK_BASE_FORCE:-0} != 1 && $recipe == "$BASE_RECIPE" ]]; then
        echo "base image: $BASE_IMAGE present (made here; VITALCHECK_BASE_FORCE=1 remakes it)" >&2
        return
    fi
    if [[ ${VITALCHECK_BASE_FORCE:-0} == 1 || ! -s $BASE_ROOTFS || $(cat "$BASE_ROOTFS.recipe" 2>/dev/null) != "$BASE_RECIPE" ]]; then
        make_rootfs
        echo "$BASE_RECIPE" >"$BASE_ROOTFS.recipe"
    fi
    log "importing $BASE_ROOTFS as $BASE_IMAGE"
    local changes=()
    for change in "${BASE_CHANGES[@]}" "LABEL org.vitalcheck.base-recipe=$BASE_RECIPE"; do
        changes+=(--change "$change")
    done
    podman import --quiet "${changes[@]}" "$BASE_ROOTFS" "$BASE_IMAGE" >/dev/null
}

# 4. Image --------------------------------------------------------------------------------------
build_image() {
    local base_id fingerprint existing
    base_id=$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")
    fingerprint=$( ("$PYTHON" packaging/bento_image.py fingerprint "$BENTO_TAG"; echo "$base_id") | sha256sum | cut -c1-64)
    existing=$(podman images --quiet --filter "label=org.vitalcheck.fingerprint=$fingerprint" | head -n1)
    if [[ -n $existing && ${VITALCHECK_IMAGE_FORCE:-0} != 1 ]]; then
        podman tag "$existing" "$IMAGE:latest"
        echo "image: up to date ($IMAGE:latest = $existing, same content as $BENTO_TAG; VITALCHECK_IMAGE_FORCE=1 rebuilds)" >&2
        return
    fi
    if [[ ! -s $CA_BUNDLE ]]; then
        echo "no CA bundle at $CA_BUNDLE (set VITALCHECK_BUILD_CA_BUNDLE)" >&2
        exit 1
    fi
    log "building $IMAGE:${BENTO_TAG#*:} with buildah (apt-get and uv install the lock; several minutes)"
    local start
    start=$(seconds)
    # containerize copies the Bento and its models into a build context and runs `buildah bud`
    # with each --opt as a flag (chroot isolation and vfs storage come from containers.sh).
    "$BENTOML" containerize "$BENTO_TAG" --backend buildah \
        --image-tag "$IMAGE:${BENTO_TAG#*:}" --image-tag "$IMAGE:latest" \
        --opt "label=org.vitalcheck.fingerprint=$fingerprint" \
        --opt "label=org.vitalcheck.bento=$BENTO_TAG" \
        --opt "volume=$CA_BUNDLE:$BUILD_CA:ro" \
        --opt unsetenv=SSL_CERT_FILE --opt unsetenv=PIP_CERT >&2
    echo "image: built in $(($(seconds) - start)) s" >&2
}

check_image() {
    # Static checks; tests/image/ runs the container and calls every endpoint.
    local user size
    user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE:latest")
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE:latest")
    if [[ -z $user || $user == root || $user == 0 || $user == 0:* ]]; then
        echo "image runs as root (Config.User='$user')" >&2
        exit 1
    fi
    echo "image: $IMAGE:latest, user $user, $((size / 1000000)) MB" >&2
}

prune_images() {
    # vfs stores every image in full (about 1.3 GB each): keep the newest VITALCHECK_IMAGE_KEEP
    # (default 2) VitalCheck images and remove older ones by tag (an image that a container
    # still uses stays), then untagged leftovers of replaced builds.
    local keep=${VITALCHECK_IMAGE_KEEP:-2} id ref latest
    local -A rank=()
    latest=$(podman image inspect --format '{{.Id}}' "$IMAGE:latest")
    while read -r id ref; do
        [[ -v rank[$id] ]] || rank[$id]=${#rank[@]}
        if ((rank[$id] >= keep)) && [[ $latest != "$id"* ]]; then
            podman rmi "$ref" >/dev/null 2>&1 && echo "pruned older image $ref" >&2
        fi
    done < <(podman images --sort created --filter "reference=$IMAGE" --format '{{.ID}} {{.Repository}}:{{.Tag}}')
    podman image prune --force >/dev/null
}

main() {
    local start
    start=$(seconds)
    ensure_tools
    build_bento
    ensure_base
    build_image
    check_image
    prune_images
    echo "done in $(($(seconds) - start)) s: podman run --rm -p 127.0.0.1:3000:3000 $IMAGE:latest" \
        "(after: source packaging/containers.sh)" >&2
}

main "$@"
