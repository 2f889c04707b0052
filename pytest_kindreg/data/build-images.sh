#!/usr/bin/env bash
# Build the images pytest-kindreg needs without pulling from any registry
# (air-gapped machines, CI without Docker Hub access):
#   registry:2                 from Debian's docker-registry package (distribution 2.8.x)
#   kindreg-test/busybox:1.0   a tiny image from busybox-static, used by the tests and examples
# Usage: scripts/build-images.sh [--force]
# Needs: docker (an engine that answers), and the two Debian packages
#   apt-get install docker-registry busybox-static
set -euo pipefail

force=0
[ "${1:-}" = "--force" ] && force=1
REGISTRY_IMAGE="${KINDREG_REGISTRY_IMAGE:-registry:2}"
TEST_IMAGE="${KINDREG_TEST_IMAGE:-kindreg-test/busybox:1.0}"

have_image() { [ "$force" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "build-images: $1 not found; install it with: $2" >&2; exit 1; }; }

need docker "apt-get install docker.io"
docker version >/dev/null 2>&1 || { echo "build-images: no Docker engine answers; start dockerd first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

copy_with_libs() {  # copy a binary and the shared libraries it links into the rootfs $1
    local root=$1 bin=$2 dest=$3 lib
    install -D -m 0755 "$bin" "$root$dest"
    for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
        install -D -m 0755 "$lib" "$root$lib"
    done
}

if have_image "$REGISTRY_IMAGE"; then
    echo "build-images: $REGISTRY_IMAGE present"
else
    need /usr/bin/docker-registry "apt-get install docker-registry"
    root="$work/registry"
    copy_with_libs "$root" /usr/bin/docker-registry /bin/registry
    mkdir -p "$root/etc/docker/registry" "$root/var/lib/registry" "$root/tmp"
    # The configuration upstream's registry:2 image ships; pytest-kindreg overrides it with
    # REGISTRY_* environment variables, which works the same for upstream images.
    cat > "$root/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YAML
    [ -d /etc/ssl/certs ] && mkdir -p "$root/etc/ssl" && cp -rL /etc/ssl/certs "$root/etc/ssl/" 2>/dev/null || true
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENTRYPOINT ["/bin/registry"]' \
        -c 'CMD ["serve", "/etc/docker/registry/config.yml"]' \
        -c 'EXPOSE 5000' \
        -c 'VOLUME ["/var/lib/registry"]' \
        -m "distribution $(/usr/bin/docker-registry --version | awk '{print $3}') from Debian docker-registry" \
        - "$REGISTRY_IMAGE" >/dev/null
    echo "build-images: built $REGISTRY_IMAGE"
fi

if have_image "$TEST_IMAGE"; then
    echo "build-images: $TEST_IMAGE present"
else
    need /bin/busybox "apt-get install busybox-static"
    root="$work/busybox"
    install -D -m 0755 /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    mkdir -p "$root/tmp" "$root/etc"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
    tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/sh"]' -m "busybox-static test image" - "$TEST_IMAGE" >/dev/null
    echo "build-images: built $TEST_IMAGE"
fi
