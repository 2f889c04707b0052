# shellcheck shell=bash
# Stage: the load balancer images. With several control-plane nodes (HA), kind runs one more
# container, <cluster>-external-load-balancer, from an image named by a constant of each kind
# release (pkg/cluster/internal/loadbalancer/const.go), which kind pulls unless the engine has
# it. No image can be pulled here, so the lab builds each image its kind CLIs ask for, under
# exactly that name, from Debian trixie's haproxy (one debootstrap root, cached in $LAB/rootfs):
#   - haproxy (kind <= v0.31: docker.io/kindest/haproxy:<tag>), as kind's images/haproxy builds
#     it: kind's minimal haproxy.cfg (read from the kind module) at kind's ConfigPath, haproxy
#     in master-worker mode as PID 1, STOPSIGNAL SIGUSR1. kind writes its config there (mkdir,
#     cp) and sends SIGHUP to PID 1: haproxy reloads it.
#   - envoy (kind >= v0.32: docker.io/envoyproxy/envoy:<tag>): kind runs `bash -c` with its own
#     loop around `envoy -c /home/envoy/envoy.yaml` and later moves the LDS/CDS files in; the
#     image's envoy is scripts/lab/loadbalancer/envoy, which serves those files with haproxy
#     (Envoy itself cannot be built offline). As in Envoy's image, the command runs as user
#     envoy (uid 101); unlike Envoy, there is no admin listener (port 10000).
# Each image is kept in the engine (label io.kindreg.lab.key) and saved in $LAB/images.

LB_PACKAGES=(haproxy procps)  # procps: /usr/bin/kill, which kind execs
LB_REVISION=1                 # bump when the way these images are put together changes

lb_root_key() { printf '%s\n' trixie "${LB_PACKAGES[@]}" | sha256sum | cut -c1-12; }
lb_root_tarball() { echo "$LAB/rootfs/loadbalancer-trixie-$(lb_root_key).tar"; }

kind_cli_version() {  # kind_cli_version VARIANT: the kind release its CLI is (Debian's reports 0.27.0)
    if [ "${V_KIND[$1]}" = debian ]; then
        /usr/bin/kind version | awk '{print $2; exit}'
    else
        echo "${V_KIND[$1]}"
    fi
}

# lb_image_of KIND-VERSION: "IMAGE FLAVOUR MODULE-DIR", read from that kind module's sources
lb_image_of() {
    local dir src image
    dir=$(kind_module_dir "$1")
    src="$dir/pkg/cluster/internal/loadbalancer"
    image=$(sed -n 's/^const Image = "\(.*\)"$/\1/p' "$src/const.go")
    [ -n "$image" ] || die "kind $1: no load balancer image in $src/const.go (its layout changed?)"
    if grep -q '^const ConfigPath = "/usr/local/etc/haproxy/haproxy.cfg"$' "$src/const.go"; then
        echo "$image haproxy $dir"
    elif grep -q 'ProxyConfigPathLDS *= "/home/envoy/lds.yaml"' "$src/config.go" \
        && grep -q 'envoy -c %s' "$src/config.go"; then
        echo "$image envoy $dir"
    else
        die "kind $1 runs its load balancer ($image) in a way the lab does not know (see $src)"
    fi
}

lb_image_key() {  # lb_image_key IMAGE FLAVOUR MODULE-DIR: what that image is made of
    local extra
    case "$2" in
        haproxy) extra=$(sha256sum <"$3/images/haproxy/haproxy.cfg") ;;
        envoy) extra=$(cat "$REPO"/scripts/lab/loadbalancer/* | sha256sum) ;;
    esac
    echo "$LB_REVISION $(lb_root_key) $1 $2 $extra" | sha256sum | cut -c1-16
}
lb_image_saved() { echo "$LAB/images/loadbalancer-$2-$(lb_image_key "$@").tar"; }
lb_image_present() {
    [ "$(docker image inspect -f '{{index .Config.Labels "io.kindreg.lab.key"}}' "$1" 2>/dev/null)" = "$(lb_image_key "$@")" ]
}

build_lb_root() {  # Debian trixie with haproxy, by debootstrap, cached
    debootstrap_tarball "$(lb_root_tarball)" "load balancer root" "${LB_PACKAGES[@]}"
}

build_lb_image() {  # build_lb_image IMAGE FLAVOUR MODULE-DIR
    local image=$1 flavour=$2 dir=$3 key saved
    key=$(lb_image_key "$@")
    saved=$(lb_image_saved "$@")
    if lb_image_present "$@"; then say "$image: present"; return; fi
    if [ -f "$saved" ]; then
        say "$image: loading the cached copy"
        docker load -q -i "$saved" >/dev/null
        return
    fi
    say "$image: building ($flavour, from Debian trixie's haproxy)"
    local work root
    work=$(mktemp -d)
    BUILD_DIRS+=("$work")
    root="$work/root"
    mkdir -p "$root"
    $SUDO tar -C "$root" -xf "$(lb_root_tarball)"
    # Debian's package starts nothing here; its own /etc/haproxy is not used.
    local metadata
    case "$flavour" in
        haproxy)
            # As kind's images/haproxy/Dockerfile: its minimal config, so that haproxy runs until
            # kind writes the real one; master-worker (-W) so that SIGHUP reloads it. One more
            # file, read after kind's: haproxy 3.0 refuses to start where it cannot raise the
            # open-files limit kind's `maxconn 100000` asks for (a hard limit of 20000 here);
            # `no strict-limits` makes that a warning.
            $SUDO install -D -m 0644 "$dir/images/haproxy/haproxy.cfg" "$root/usr/local/etc/haproxy/haproxy.cfg"
            printf '# the kind lab: start even where the open-files limit cannot be raised\nglobal\n  no strict-limits\n' \
                | $SUDO tee "$root/usr/local/etc/haproxy/kindreg-lab.cfg" >/dev/null
            metadata='STOPSIGNAL SIGUSR1
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg", "-f", "/usr/local/etc/haproxy/kindreg-lab.cfg"]' ;;
        envoy)
            # As Envoy's image: its entrypoint runs the command as user envoy (uid 101), whose
            # home kind writes the bootstrap into.
            $SUDO install -D -m 0755 "$REPO/scripts/lab/loadbalancer/envoy" "$root/usr/local/bin/envoy"
            $SUDO install -m 0755 "$REPO/scripts/lab/loadbalancer/docker-entrypoint.sh" "$root/docker-entrypoint.sh"
            echo 'envoy:x:101:101::/home/envoy:/usr/sbin/nologin' | $SUDO tee -a "$root/etc/passwd" >/dev/null
            $SUDO install -d -m 0755 -o 101 -g 101 "$root/home/envoy"
            metadata='ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["envoy", "--version"]' ;;
    esac
    $SUDO tar -C "$root" --numeric-owner -c . | docker import - "$image.tmp" >/dev/null
    # STOPSIGNAL cannot be set by import on older engines: a short build adds the metadata.
    printf 'FROM %s\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n%s\nLABEL io.kindreg.lab.key=%s io.kindreg.lab.stands-in-for=%s\n' \
        "$image.tmp" "$metadata" "$key" "$flavour" \
        | DOCKER_BUILDKIT=0 docker build -q -t "$image" - >"$work/build.log" 2>&1 \
        || die "docker build of $image failed: $(tail -n 5 "$work/build.log")"
    docker rmi "$image.tmp" >/dev/null
    $SUDO rm -rf "$work"
    docker run --rm --entrypoint haproxy "$image" -v >/dev/null || die "$image: haproxy does not run in it"
    rm -f "$LAB"/images/loadbalancer-"$flavour"-*.tar
    docker save -o "$saved.tmp" "$image" && mv "$saved.tmp" "$saved"
}

build_lb_images() {  # the image each variant's kind CLI asks for (one build per distinct name)
    local v version image flavour dir seen=()
    stage "root" build_lb_root
    for v in "${VARIANTS[@]}"; do
        version=$(kind_cli_version "$v")
        read -r image flavour dir <<<"$(lb_image_of "$version")"
        # The CLI itself must name it (Debian's kind is built from the 0.27.0 sources).
        grep -aqF "$image" "$(variant_kind "$v")" \
            || die "$(variant_kind "$v") does not name $image, which the sigs.k8s.io/kind@$version sources do"
        [[ " ${seen[*]} " != *" $image "* ]] || continue
        seen+=("$image")
        stage "$image" build_lb_image "$image" "$flavour" "$dir"
    done
}

lb_images_line() {  # lb_images_line VARIANT: what build says about the variant's HA load balancer
    local version image flavour dir
    version=$(kind_cli_version "$1")
    read -r image flavour dir <<<"$(lb_image_of "$version")"
    echo "$1: kind $version's HA load balancer image $image is the lab's (Debian trixie's haproxy$([ "$flavour" = envoy ] && echo ' behind an envoy stand-in'))"
}
