#!/usr/bin/env bash
# The offline kind lab: real kind clusters on a machine that cannot pull any image.
#
#   scripts/kind-lab.sh [build]           build what is missing, reuse the rest, then print one
#                                         line of pytest options per variant (the last lines)
#   scripts/kind-lab.sh options [VARIANT] print those lines (or one variant's) without building
#   scripts/kind-lab.sh pytest [--variant V] ARGS...
#                                         run pytest against a lab variant (default: the last),
#                                         keeping the host's kernel settings (see `guard`)
#   scripts/kind-lab.sh variants          print the variant names
#   scripts/kind-lab.sh guard CMD...      record the VM-wide sysctls kubelet rewrites, run CMD,
#                                         and restore them once no kind cluster is left
#
# The variants are one table, scripts/lab/stages/variants.tsv: Kubernetes version, kind CLI,
# kind base files, containerd. The build is named stages (scripts/lab/stages/*.sh, one function
# per step, each logged with its time, as kind's own pkg/build/nodeimage does), all cached under
# $KINDREG_LAB_DIR (default ~/.cache/kindreg-lab) and keyed by versions, so a rerun only checks:
#   - each variant's kind CLI: Debian trixie's kind 0.27.0, or `go install sigs.k8s.io/kind@V`;
#   - its Kubernetes (kubeadm, kubelet, kubectl, control plane, kube-proxy) from the
#     k8s.io/kubernetes Go module, etcd and coredns at the tags its kubeadm asks for, from their
#     Go modules; crictl from sigs.k8s.io/cri-tools, pause from scripts/lab/pause.c;
#   - its containerd: Debian trixie's, sid's, or built from github.com/containerd/containerd/v2;
#   - a node image built the way kind's is: a Debian trixie root (debootstrap) with systemd,
#     kind's entrypoint/units/containerd config read from the variant's sigs.k8s.io/kind module
#     in the Go module cache, the images its manifests name imported pinned into containerd's
#     k8s.io namespace;
#   - storage as kind deploys it (kind's own default-storage manifest with local-path-provisioner
#     built from its Go module) and a kindnetd-like pod network (scripts/lab/node/);
#   - the load balancer image each kind CLI runs in front of several control-plane nodes (HA),
#     under exactly the name it asks for, from Debian trixie's haproxy (scripts/lab/loadbalancer/).
# Host adaptations are detected and applied only where needed (docs/explanation/offline-lab.md).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=lab/host.sh
. scripts/lab/host.sh
# shellcheck source=venv.sh
. scripts/venv.sh
# The build context first (paths, versions, the variant table, stages, keys), then the stages.
# shellcheck source=lab/stages/context.sh
. scripts/lab/stages/context.sh
# shellcheck source=lab/stages/prerequisites.sh
. scripts/lab/stages/prerequisites.sh
# shellcheck source=lab/stages/go.sh
. scripts/lab/stages/go.sh
# shellcheck source=lab/stages/rootfs.sh
. scripts/lab/stages/rootfs.sh
# shellcheck source=lab/stages/images.sh
. scripts/lab/stages/images.sh
# shellcheck source=lab/stages/node_image.sh
. scripts/lab/stages/node_image.sh
# shellcheck source=lab/stages/loadbalancer.sh
. scripts/lab/stages/loadbalancer.sh
# shellcheck source=lab/stages/cache.sh
. scripts/lab/stages/cache.sh
# shellcheck source=lab/stages/guard.sh
. scripts/lab/stages/guard.sh

build() {  # every stage, in order; each one reuses what the cache already has
    local started=$SECONDS v k8s
    mkdir -p "$LAB/bin" "$LAB/src" "$LAB/images" "$LAB/rootfs"
    stage "prerequisites" check_prerequisites
    stage "host adaptations" host_adaptations
    for k8s in $(k8s_versions); do stage "kubernetes $k8s" build_kubernetes "$k8s"; done
    stage "go programs" build_go_tools
    stage "node root" build_rootfs
    for k8s in $(k8s_versions); do stage "control-plane images $k8s" build_image_archive "$k8s"; done
    stage "storage and pod network images" build_addon_archive
    stage "node images" build_node_images
    stage "load balancer images" build_lb_images
    stage "cache" prune_cache
    for v in "${VARIANTS[@]}"; do say "$(lb_images_line "$v")"; done
    say "lab ready in $((SECONDS - started)) s (cache: $LAB); pytest options per variant:"
    for v in "${VARIANTS[@]}"; do options_line "$v"; done
}

case "${1:-build}" in
    build) build ;;
    options)
        if [ -n "${2:-}" ]; then options_line "$2"; else for v in "${VARIANTS[@]}"; do options_line "$v"; done; fi ;;
    pytest)
        shift
        variant=${VARIANTS[-1]}
        if [ "${1:-}" = --variant ]; then variant=$2; shift 2; fi
        known_variant "$variant"
        docker image inspect "$(variant_image "$variant")" >/dev/null 2>&1 || die "no lab image for $variant: run scripts/kind-lab.sh build"
        read -r lb_image _ _ <<<"$(lb_image_of "$(kind_cli_version "$variant")")"
        docker image inspect "$lb_image" >/dev/null 2>&1 \
            || die "no HA load balancer image $lb_image for $variant: run scripts/kind-lab.sh build"
        read -ra opts <<<"$(options_line "$variant")"
        py=$(kindreg_python) || exit 1
        guard "$py" -m pytest "${opts[@]}" "$@" ;;
    guard) shift; guard "$@" ;;
    variants) printf '%s\n' "${VARIANTS[@]}" ;;
    *) die "unknown command $1 (build, options, pytest, variants, guard)" ;;
esac
