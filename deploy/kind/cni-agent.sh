#!/bin/bash
# The pod network of a kind cluster built from the registries (tunefleet_dev.kindimage), doing
# what kind's kindnetd does, which no registry serves (docs/deploy.md): on each node, the CNI
# configuration for the node's pod range (ptp + host-local + portmap, kindnetd's), a route to
# every other node's pod range through that node, and masquerading of what pods send outside
# the cluster's pod range. Runs as the DaemonSet in deploy/kind/cni.yaml, on the host network.
#   env: NODE_NAME, POD_SUBNET, CONTROL_PLANE_ENDPOINT (host:port; kind adds it)
set -euo pipefail

account=/var/run/secrets/kubernetes.io/serviceaccount
# The API server without the Service (kube-proxy may not run yet), as kindnetd does.
api="https://${CONTROL_PLANE_ENDPOINT:-${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}}"
conf=/etc/cni/net.d/10-kindnet.conflist

write_conf() {
	local tmp="$conf.tmp"
	jq -n --arg subnet "$1" '{
		cniVersion: "0.4.0", name: "kindnet",
		plugins: [
			{type: "ptp", ipMasq: false, mtu: 1500,
			 ipam: {type: "host-local", dataDir: "/run/cni-ipam-state",
			        routes: [{dst: "0.0.0.0/0"}], ranges: [[{subnet: $subnet}]]}},
			{type: "portmap", capabilities: {portMappings: true}}
		]}' >"$tmp"
	cmp -s "$tmp" "$conf" 2>/dev/null && rm -f "$tmp" || mv "$tmp" "$conf"
}

nft -f - <<NFT
table ip tunefleet-cni
delete table ip tunefleet-cni
table ip tunefleet-cni {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr $POD_SUBNET ip daddr != $POD_SUBNET masquerade
	}
}
NFT
echo "cni-agent on $NODE_NAME: pod range $POD_SUBNET, API $api"

while true; do
	if nodes=$(curl -sf --max-time 10 --cacert "$account/ca.crt" \
		-H "Authorization: Bearer $(cat "$account/token")" "$api/api/v1/nodes"); then
		jq -r '.items[] | [.metadata.name, (.spec.podCIDR // ""),
			([(.status.addresses // [])[] | select(.type == "InternalIP") | .address] | first // "")]
			| @tsv' <<<"$nodes" |
			while IFS=$'\t' read -r name range address; do
				if [ -z "$range" ]; then
					continue
				elif [ "$name" = "$NODE_NAME" ]; then
					write_conf "$range"
				elif [ -n "$address" ]; then
					ip route replace "$range" via "$address"
				fi
			done
	else
		echo "cni-agent: the API server at $api does not answer yet" >&2
	fi
	sleep 5
done
