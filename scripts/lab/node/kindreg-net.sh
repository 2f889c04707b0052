#!/bin/sh
# The lab's pod network agent, doing what kindnetd does (kindnetd's own Go module is not served
# by the module proxy). The kindreg-net DaemonSet (/kind/manifests/default-cni.yaml) runs it in
# the node's root (chroot) with NODE_NAME and POD_SUBNET (kind templates the cluster's podSubnet).
# It follows the nodes with the node's kubectl and kubelet credentials and, on each change:
#   - writes this node's CNI config (ptp + host-local on its spec.podCIDR, portmap);
#   - routes every other node's podCIDR via that node's InternalIP;
# and, once, masquerades pod traffic that leaves POD_SUBNET (pods reach the kind network).
# IPv4 only.
set -eu
: "${NODE_NAME:?NODE_NAME is not set}" "${POD_SUBNET:?POD_SUBNET is not set}"
conf=/etc/cni/net.d/10-kindreg.conflist
log() { echo "kindreg-net: $*"; }

# The first IPv4 CIDR of POD_SUBNET (a dual-stack cluster passes "v4,v6").
subnet=$(echo "$POD_SUBNET" | tr ',' '\n' | grep -m 1 '^[0-9.]*/[0-9]*$' || true)
[ -n "$subnet" ] || { log "no IPv4 pod subnet in POD_SUBNET=$POD_SUBNET; the lab's network is IPv4 only"; exec sleep infinity; }

ipt() { iptables -w 5 "$@"; }
masquerade() {  # as kindnetd's KIND-MASQ-AGENT: pod traffic to anything outside the pod subnet
    ipt -t nat -N KINDREG-MASQ 2>/dev/null || true
    ipt -t nat -C KINDREG-MASQ -d "$subnet" -j RETURN 2>/dev/null || ipt -t nat -I KINDREG-MASQ 1 -d "$subnet" -j RETURN
    ipt -t nat -C KINDREG-MASQ -j MASQUERADE 2>/dev/null || ipt -t nat -A KINDREG-MASQ -j MASQUERADE
    set -- POSTROUTING -s "$subnet" -m addrtype ! --dst-type LOCAL -m comment --comment "kindreg-net: pod traffic leaving the pod subnet" -j KINDREG-MASQ
    ipt -t nat -C "$@" 2>/dev/null || ipt -t nat -A "$@"
}

write_conf() {  # $1 = this node's podCIDR; rewritten only when it changes (containerd watches the dir)
    mtu=$(cat /sys/class/net/eth0/mtu 2>/dev/null || echo 1500)
    new=$(cat <<CONF
{
  "cniVersion": "0.3.1",
  "name": "kindreg",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": $mtu,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "$1"}]]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
)
    [ "$(cat "$conf" 2>/dev/null)" != "$new" ] || return 0
    mkdir -p "${conf%/*}"
    printf '%s\n' "$new" >"$conf.tmp"  # containerd loads *.conflist only: no half-written config
    mv "$conf.tmp" "$conf"
    log "wrote $conf for $1"
}

sync_node() {  # NAME PODCIDR INTERNAL-IP...
    name=$1 cidr=${2:-} ip=${3:-}
    case "$cidr" in *.*/*) ;; *) return 0 ;; esac  # no (IPv4) podCIDR yet
    if [ "$name" = "$NODE_NAME" ]; then
        write_conf "$cidr"
    elif [ -n "$ip" ]; then
        case "$(ip -4 route show exact "$cidr")" in
            *"via $ip "* | *"via $ip") ;;
            *) ip route replace "$cidr" via "$ip" && log "route $cidr via $ip ($name)" ;;
        esac
    fi
}

masquerade
log "pod subnet $subnet, node $NODE_NAME"
# One watch, restarted when it ends (API server restarts, watch timeouts): its first lines are
# every node as it is, then one line per change.
fields='{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}'
while :; do
    kubectl --kubeconfig=/etc/kubernetes/kubelet.conf get nodes --watch -o jsonpath="$fields" \
        | while read -r name cidr ip _; do sync_node "$name" "$cidr" "$ip"; done || true
    sleep 1
done
