// Package netns holds the fault tests of a PushUp cluster: three pushupd
// processes, each in its own Linux network namespace, joined by veth pairs
// to a bridge in a fourth namespace, with nftables rules that cut a node
// off from the others, heal the cut, or drop a share of node-to-node
// packets. The test makes every namespace, link, address and rule itself
// and removes them (deleting the namespaces) when it ends, failed or not;
// no address outside those namespaces is ever used.
//
// The tests need root, iproute2 (ip) and nftables (nft). Without them
// they skip with a message, unless PUSHUP_REQUIRE_NETNS=1 (as .ci/run
// sets), when they fail. The package has no code outside its tests.
package netns
