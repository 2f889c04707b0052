#!/bin/sh
# The lab's pod network (instead of kindnetd, whose nested Go module the module proxy does not
# serve): a static ptp + host-local CNI config, written before kubelet starts. Each node takes
# the /24 of the pod subnet numbered by the last octet of its own IPv4 address, and routes the
# other nodes' /24s through their node addresses, as kindnetd would.
set -eu
conf=/etc/cni/net.d/10-kindreg-ptp.conflist
subnet=$(sed -n 's/^ *podSubnet: *"\{0,1\}\([0-9.]*\)\/16.*/\1/p' /kind/kubeadm.conf 2>/dev/null | head -n 1)
subnet=${subnet:-10.244.0.0}
prefix=${subnet%.*.*}
addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | head -n 1)
ip_only=${addr%/*}
own=${ip_only##*.}
net=${ip_only%.*}
mkdir -p /etc/cni/net.d
cat >"$conf" <<CONF
{
  "cniVersion": "0.3.1",
  "name": "kindreg",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "$prefix.$own.0/24"}]]
      },
      "mtu": 1500
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
# Pod traffic leaving the pod subnet is masqueraded behind the node address.
iptables -t nat -C POSTROUTING -s "$prefix.$own.0/24" ! -d "$prefix.0.0/16" -j MASQUERADE 2>/dev/null \
    || iptables -t nat -A POSTROUTING -s "$prefix.$own.0/24" ! -d "$prefix.0.0/16" -j MASQUERADE
i=2
while [ "$i" -lt 64 ]; do
    [ "$i" = "$own" ] || ip route replace "$prefix.$i.0/24" via "$net.$i" dev eth0 onlink 2>/dev/null || true
    i=$((i + 1))
done
