#!/usr/bin/env bash
# Build VitalCheck's OCI image on a host WITHOUT a Docker engine or container-registry access,
# with Debian's buildah (build) and podman (run), from the Bento that `bentoml build` makes:
# a slim, read-only-ready runtime image (docs/SHIPPING.md).
#
#   packaging/build_image.sh            # = make image
#
# Steps, each reused when its result is already there:
#   1. tools   buildah, podman, runc, debootstrap (apt-get install when missing and root)
#   2. bento   import_models.py + bentoml build (into $BENTOML_HOME, default ~/bentoml); the
#              image's hashed lock (packaging/requirements.lock) is checked against the Bento's
#              pins and .venv (packaging/bento_image.py lock-check)
#   3. base    a Debian bookworm minbase root with python3 (3.11, like .venv) and without apt,
#              made with debootstrap, imported with podman as localhost/vitalcheck-base and used
#              by digest (recorded in $VITALCHECK_IMAGE_STATE/base.digest, checked at each build)
#   4. deps    /app/.venv from the lock, --require-hashes (packaging/Containerfile.deps), tagged
#              localhost/vitalcheck-deps:<hash of lock, recipe and base>
#   5. image   packaging/Containerfile from the Bento's files (bento_image.py stage): layers base,
#              dependencies, code, models; OCI labels; HEALTHCHECK (docker format); tagged
#              localhost/vitalcheck:<bento version> and :latest; skipped when an image with the
#              same content fingerprint (source, lock, models, recipe, base) exists
#   6. checks  non-root user, no package manager or compiler, size per layer; the SBOM
#              (CycloneDX JSON, build/sbom.cdx.json) checked against the lock
#
# Environment: BENTOML_HOME; VITALCHECK_IMAGE_STATE (store, base rootfs, caches; default
# /var/lib/vitalcheck-image); DEBIAN_MIRROR (default http://deb.debian.org/debian);
# VITALCHECK_BUILD_CA_BUNDLE (CA bundle mounted read-only while building, for hosts whose
# HTTPS goes through an intercepting proxy; default the host's own bundle; never in the image);
# VITALCHECK_BASE_DIGEST (require this base digest, e.g. one recorded by a release);
# VITALCHECK_IMAGE_SOURCE, VITALCHECK_IMAGE_LICENSES (OCI labels); VITALCHECK_IMAGE_FORCE=1
# rebuilds the image, VITALCHECK_BASE_FORCE=1 remakes the base; the newest
# VITALCHECK_IMAGE_KEEP (default 2) images are kept, older ones pruned; VITALCHECK_SBOM (path of
# the SBOM, default build/sbom.cdx.json).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=packaging/containers.sh
source packaging/containers.sh

PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BENTOML=${BENTOML:-$ROOT/.venv/bin/bentoml}
UV=${UV:-$ROOT/.venv/bin/uv}
export BENTOML_DO_NOT_TRACK=True
# uv (bentoml build resolves with it; the SBOM tool install) caches in the state folder, not ~.
export UV_CACHE_DIR=${UV_CACHE_DIR:-$VITALCHECK_IMAGE_STATE/uv-cache}
IMAGE=${VITALCHECK_IMAGE:-localhost/vitalcheck}
BASE_IMAGE=localhost/vitalcheck-base
DEPS_IMAGE=localhost/vitalcheck-deps
BASE_ROOTFS=$VITALCHECK_IMAGE_STATE/bookworm-python3-rootfs.tar
BASE_DIGEST_FILE=$VITALCHECK_IMAGE_STATE/base.digest
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${VITALCHECK_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
SBOM=${VITALCHECK_SBOM:-$ROOT/build/sbom.cdx.json}
# The SBOM tool: the pin of the `image` extra of pyproject.toml.
CYCLONEDX=$("$PYTHON" -c 'import tomllib; print(*(p for p in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["image"] if p.startswith("cyclonedx-bom==")))')
# What the base holds beyond minbase: Python 3.11 only (no pip: the deps stage mounts uv).
BASE_PACKAGES=python3
# The runtime user: uid 1034 (BentoML's), group 0, so that any UID run with group 0 (OpenShift)
# is in the same position: every file root-owned and readable, two writable folders (tmpfs).
BASE_CHANGES=(
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'ENV LANG=C.UTF-8'
    'USER 1034:0'
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
    # No package manager at run time: apt and what only apt uses are purged (dpkg's database
    # stays, so scanners and the SBOM still list the Debian packages; the dpkg programs go).
    chroot "$work" dpkg --purge apt libapt-pkg6.0 debian-archive-keyring gpgv >&2
    # No Perl either (10 MB; only debconf and adduser, i.e. package installation, use it), and no
    # iconv modules (9 MB; Python has its own codecs).
    chroot "$work" dpkg --purge --force-remove-essential adduser perl-base >&2
    rm -rf "$work"/usr/lib/x86_64-linux-gnu/gconv
    rm -f "$work"/usr/bin/dpkg "$work"/usr/bin/dpkg-* "$work"/usr/sbin/dpkg-*
    rm -rf "$work"/etc/apt "$work"/var/lib/apt "$work"/var/cache/apt "$work"/var/log/apt
    # Trimmed like Debian's slim images: no manuals, docs (copyright files excepted),
    # translations, logs or caches.
    find "$work/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$work/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$work"/usr/share/man/* "$work"/usr/share/info/* "$work"/usr/share/lintian/* \
        "$work"/usr/share/common-licenses "$work"/var/cache/debconf/*-old "$work"/var/lib/dpkg/*-old \
        "$work"/var/log/* "$work"/var/cache/ldconfig/aux-cache
    find "$work/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    # The runtime user and BENTOML_HOME: every folder BentoML makes at start-up exists (so it
    # makes none), root-owned and read-only to others; prometheus_multiproc_dir, the one it
    # writes, is group 0-writable (and a tmpfs when the root file system is read-only).
    echo 'bentoml:x:1034:0:BentoML:/home/bentoml:/usr/sbin/nologin' >>"$work/etc/passwd"
    mkdir -p "$work"/home/bentoml/{bentos,models,envs,tmp,prometheus_multiproc_dir} "$work/app"
    chmod 0755 "$work/home/bentoml" "$work"/home/bentoml/{bentos,models,envs,tmp} "$work/app"
    chmod 0775 "$work/home/bentoml/prometheus_multiproc_dir"
    chmod 1777 "$work/tmp"
    tar --numeric-owner --owner=0 --group=0 --sort=name -C "$work" -cf "$BASE_ROOTFS.part" .
    mv "$BASE_ROOTFS.part" "$BASE_ROOTFS"
    rm -rf "$work"
}

ensure_base() {
    # The recipe identifies how the base is made (packages, mirror, make_rootfs, image
    # settings); a base or rootfs tarball made another way is remade. The base is then used by
    # digest only (BASE_REF): the one recorded when it was imported, and checked here, so a base
    # replaced under its name (or a VITALCHECK_BASE_DIGEST other than the store's) stops the build.
    BASE_RECIPE=$( (echo "$BASE_PACKAGES $DEBIAN_MIRROR" && declare -f make_rootfs && printf '%s\n' "${BASE_CHANGES[@]}") |
        sha256sum | cut -c1-16)
    local recipe="" digest
    podman image exists "$BASE_IMAGE:latest" &&
        recipe=$(podman image inspect --format '{{index .Labels "org.vitalcheck.base-recipe"}}' "$BASE_IMAGE:latest")
    if [[ ${VITALCHECK_BASE_FORCE:-0} == 1 || $recipe != "$BASE_RECIPE" ]]; then
        if [[ ${VITALCHECK_BASE_FORCE:-0} == 1 || ! -s $BASE_ROOTFS || $(cat "$BASE_ROOTFS.recipe" 2>/dev/null) != "$BASE_RECIPE" ]]; then
            make_rootfs
            echo "$BASE_RECIPE" >"$BASE_ROOTFS.recipe"
        fi
        log "importing $BASE_ROOTFS as $BASE_IMAGE"
        local changes=()
        for change in "${BASE_CHANGES[@]}" "LABEL org.vitalcheck.base-recipe=$BASE_RECIPE"; do
            changes+=(--change "$change")
        done
        podman import --quiet "${changes[@]}" "$BASE_ROOTFS" "$BASE_IMAGE:latest" >/dev/null
        podman image inspect --format '{{.Digest}}' "$BASE_IMAGE:latest" >"$BASE_DIGEST_FILE"
    fi
    digest=$(podman image inspect --format '{{.Digest}}' "$BASE_IMAGE:latest")
    if [[ $digest != "$(cat "$BASE_DIGEST_FILE" 2>/dev/null)" ]]; then
        echo "base image: $BASE_IMAGE:latest is $digest, not the recorded $(cat "$BASE_DIGEST_FILE" 2>/dev/null || echo '(none)')" \
            "($BASE_DIGEST_FILE); VITALCHECK_BASE_FORCE=1 remakes it" >&2
        exit 1
    fi
    if [[ -n ${VITALCHECK_BASE_DIGEST:-} && $digest != "$VITALCHECK_BASE_DIGEST" ]]; then
        echo "base image: $digest, not VITALCHECK_BASE_DIGEST=$VITALCHECK_BASE_DIGEST" >&2
        exit 1
    fi
    BASE_REF=$BASE_IMAGE@$digest
    podman image exists "$BASE_REF" || { echo "base image: $BASE_REF does not resolve" >&2; exit 1; }
    echo "base image: $BASE_REF (made here; VITALCHECK_BASE_FORCE=1 remakes it)" >&2
}

# 4. Python dependencies ------------------------------------------------------------------------
build_deps() {
    local key
    key=$(cat packaging/requirements.lock packaging/Containerfile.deps packaging/prune-site-packages.sh |
        (cat && echo "$BASE_REF") | sha256sum | cut -c1-16)
    DEPS_REF=$DEPS_IMAGE:$key
    if podman image exists "$DEPS_REF"; then
        echo "dependencies: $DEPS_REF present (same lock, recipe and base)" >&2
        return
    fi
    if [[ ! -s $CA_BUNDLE ]]; then
        echo "no CA bundle at $CA_BUNDLE (set VITALCHECK_BUILD_CA_BUNDLE)" >&2
        exit 1
    fi
    log "installing packaging/requirements.lock into /app/.venv ($DEPS_REF; a few minutes the first time)"
    local start
    start=$(seconds)
    mkdir -p "$VITALCHECK_IMAGE_STATE/uv-cache"
    buildah build --quiet --pull=never --layers=false -f packaging/Containerfile.deps \
        --build-arg "BASE=$BASE_REF" \
        --volume "$(readlink -f "$UV"):/run/vitalcheck-build/uv:ro" \
        --volume "$CA_BUNDLE:/run/vitalcheck-build/ca-certificates.crt:ro" \
        --volume "$VITALCHECK_IMAGE_STATE/uv-cache:/run/vitalcheck-build/uv-cache" \
        --tag "$DEPS_REF" packaging >&2
    echo "dependencies: built in $(($(seconds) - start)) s" >&2
}

# 5. Image --------------------------------------------------------------------------------------
git_revision() {
    # Read-only git: the commit, "-dirty" when the working tree differs from it.
    local revision
    revision=$(git rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
    [[ -z $(git --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]] || revision+=-dirty
    echo "$revision"
}

build_image() {
    local deps_id fingerprint existing version revision source
    deps_id=$(podman image inspect --format '{{.Id}}' "$DEPS_REF")
    fingerprint=$( ("$PYTHON" packaging/bento_image.py fingerprint "$BENTO_TAG"
        cat packaging/Containerfile; echo "$BASE_REF $deps_id") | sha256sum | cut -c1-64)
    existing=$(podman images --quiet --filter "label=org.vitalcheck.fingerprint=$fingerprint" | head -n1)
    if [[ -n $existing && ${VITALCHECK_IMAGE_FORCE:-0} != 1 ]]; then
        podman tag "$existing" "$IMAGE:latest"
        echo "image: up to date ($IMAGE:latest = $existing, same content as $BENTO_TAG; VITALCHECK_IMAGE_FORCE=1 rebuilds)" >&2
        return
    fi
    version=$("$PYTHON" -c 'import vitalcheck; print(vitalcheck.__version__)')
    revision=$(git_revision)
    source=${VITALCHECK_IMAGE_SOURCE:-$(git config --get remote.origin.url 2>/dev/null || echo "file://$ROOT")}
    local context=$VITALCHECK_IMAGE_STATE/context
    "$PYTHON" packaging/bento_image.py stage "$BENTO_TAG" "$context" >&2
    log "building $IMAGE:${BENTO_TAG#*:} (layers: base, dependencies, code, models)"
    local start
    start=$(seconds)
    # --format docker: the OCI image format has no HEALTHCHECK (buildah drops it with a
    # warning); Docker's v2 schema 2 carries it and every registry and runtime accepts it.
    # --layers: one layer per COPY, each reused while its content is unchanged.
    buildah build --quiet --pull=never --layers --format docker -f packaging/Containerfile \
        --build-arg "BASE=$BASE_REF" --build-arg "DEPS=$DEPS_REF" \
        --label "org.opencontainers.image.title=VitalCheck" \
        --label "org.opencontainers.image.description=VitalCheck health-risk models served by BentoML (research and education; not a medical device)" \
        --label "org.opencontainers.image.version=$version" \
        --label "org.opencontainers.image.revision=$revision" \
        --label "org.opencontainers.image.source=$source" \
        --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        --label "org.opencontainers.image.licenses=${VITALCHECK_IMAGE_LICENSES:-NOASSERTION}" \
        --label "org.opencontainers.image.base.name=$BASE_IMAGE" \
        --label "org.opencontainers.image.base.digest=${BASE_REF#*@}" \
        --label "org.vitalcheck.fingerprint=$fingerprint" \
        --label "org.vitalcheck.bento=$BENTO_TAG" \
        --tag "$IMAGE:${BENTO_TAG#*:}" --tag "$IMAGE:latest" "$context" >/dev/null
    rm -rf "$context"
    echo "image: built in $(($(seconds) - start)) s" >&2
}

check_image() {
    # Static checks; tests/image/ runs the container and calls every endpoint.
    local user size found
    user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE:latest")
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE:latest")
    if [[ -z $user || $user == root || $user == 0 || $user == 0:* ]]; then
        echo "image runs as root (Config.User='$user')" >&2
        exit 1
    fi
    # No package manager, compiler or build tool in the image.
    found=$(podman run --rm --pull=never --no-healthcheck --read-only --network none --entrypoint /bin/sh "$IMAGE:latest" -c \
        'for p in apt apt-get dpkg pip pip3 uv gcc cc c++ g++ make git; do command -v "$p"; done; true')
    if [[ -n $found ]]; then
        echo "image holds: $found" >&2
        exit 1
    fi
    echo "image: $IMAGE:latest, user $user, $((size / 1000000)) MB; layers (newest first):" >&2
    podman history --format '{{.Size}}|{{.CreatedBy}}' "$IMAGE:latest" | while IFS='|' read -r layer by; do
        [[ $layer == 0B ]] || printf 'image:   %10s  %s\n' "$layer" "${by:0:100}" >&2
    done
}

make_sbom() {
    # CycloneDX JSON: cyclonedx-py (pinned, installed once into the state folder, never into the
    # image) run inside the image on its own site-packages, by the image's Python, read-only and
    # offline; then the base's Debian packages are added and the list checked against the lock.
    local tools=$VITALCHECK_IMAGE_STATE/tools/${CYCLONEDX/==/-} raw status
    if [[ ! -d $tools ]]; then
        log "installing $CYCLONEDX (SBOM tool) into $tools"
        "$UV" pip install --no-config --quiet --target "$tools.part" --python-version 3.11 \
            --python-platform x86_64-manylinux_2_28 --only-binary :all: "$CYCLONEDX"
        mv "$tools.part" "$tools"
    fi
    mkdir -p "$(dirname "$SBOM")"
    raw=$(mktemp) status=$(mktemp)
    # shellcheck disable=SC2064
    trap "rm -f '$raw' '$status'" RETURN
    podman run --rm --pull=never --no-healthcheck --read-only --network none --volume "$tools:/opt/sbom-tool:ro" \
        --entrypoint /usr/bin/python3 "$IMAGE:latest" -c \
        'import sys; sys.path.insert(0, "/opt/sbom-tool"); from cyclonedx_py._internal.cli import run;
run(argv=["environment", "--output-format", "JSON", "--output-file", "-", "--mc-type", "application", "/app/.venv"])' \
        >"$raw" 2>/dev/null
    podman run --rm --pull=never --no-healthcheck --read-only --network none --entrypoint /bin/cat "$IMAGE:latest" \
        /var/lib/dpkg/status >"$status"
    "$PYTHON" packaging/bento_image.py sbom "$raw" "$status" "$SBOM" >&2
}

prune_images() {
    # vfs stores every layer in full: keep the newest VITALCHECK_IMAGE_KEEP (default 2)
    # VitalCheck images and remove older ones by tag (an image that a container still uses
    # stays), the dependency images other than the one in use, then untagged leftovers.
    local keep=${VITALCHECK_IMAGE_KEEP:-2} id ref latest
    local -A rank=()
    latest=$(podman image inspect --format '{{.Id}}' "$IMAGE:latest")
    while read -r id ref; do
        [[ -v rank[$id] ]] || rank[$id]=${#rank[@]}
        if ((rank[$id] >= keep)) && [[ $latest != "$id"* ]]; then
            podman rmi "$ref" >/dev/null 2>&1 && echo "pruned older image $ref" >&2
        fi
    done < <(podman images --sort created --filter "reference=$IMAGE" --format '{{.ID}} {{.Repository}}:{{.Tag}}')
    # buildah leaves the working container of the Containerfile's `FROM ${DEPS} AS deps` stage
    # (a full copy of the dependencies under vfs): remove every one of those first.
    local container name
    while read -r container name; do
        if [[ $name == vitalcheck-deps-working-container* ]]; then buildah rm "$container" >/dev/null; fi
    done < <(buildah containers --format '{{.ContainerID}} {{.ContainerName}}')
    while read -r ref; do
        [[ $ref == "$DEPS_REF" ]] || { podman rmi "$ref" >/dev/null 2>&1 && echo "pruned older image $ref" >&2; }
    done < <(podman images --filter "reference=$DEPS_IMAGE" --format '{{.Repository}}:{{.Tag}}')
    podman image prune --force >/dev/null
}

main() {
    local start
    start=$(seconds)
    ensure_tools
    build_bento
    ensure_base
    build_deps
    build_image
    check_image
    make_sbom
    prune_images
    echo "done in $(($(seconds) - start)) s: podman run --rm -p 127.0.0.1:3000:3000 $IMAGE:latest" \
        "(after: source packaging/containers.sh)" >&2
}

main "$@"
