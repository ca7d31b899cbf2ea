"""Write an inventory of N client/server pairs of the `simple` topology, for the scale benchmark.

    .venv/bin/python bench/scale_inventory.py --pairs 4 --out /tmp/scale-4 [--ssh-key /tmp/key]

The inventory has the shape of inventories/lab (hosts.yml with the topology, group_vars/ and
host_vars/ beside it), so the collection's own playbooks run on it unchanged:

    ansible-playbook -i /tmp/scale-4 playbooks/lab_up.yml -e lab_group=scale
    ansible-playbook -i /tmp/scale-4 playbooks/configure.yml -e scenario=scale
    ansible-playbook -i /tmp/scale-4 playbooks/check.yml -e scenario=scale
    ansible-playbook -i /tmp/scale-4 playbooks/lab_down.yml

Pair n (1..N): containers scale-<n>-client and scale-<n>-server on the networks scale-<n>-a
10.140.<2n-2>.0/24 (eth0) and scale-<n>-b 10.140.<2n-1>.0/24 (eth1); clients .3, servers .2, the
server signals its path B address; the same limits, proxies and exact counts as `simple`.
Nothing here overlaps inventories/lab. With --ssh-key, Ansible reaches every container over SSH
(ansible_host = its path A address) with that key, as tests/ssh/inventory.yml does.
"""
import argparse
import json
import os
import sys

GROUP = "scale"
MAX_PAIRS = 64  # 10.140.0.0/16 holds 128 /24 subnets: two per pair


def subnet(pair, path):
    """10.140.x.0/24 of path 'a' or 'b' of pair n (1-based)."""
    return "10.140.%d" % (2 * (pair - 1) + (0 if path == "a" else 1))


def inventory(pairs, ssh_key=None, prefix=GROUP):
    """(hosts.yml, {group_vars file: dict}, {host_vars file: dict}) as plain dicts."""
    if not 1 <= pairs <= MAX_PAIRS:
        raise ValueError("pairs must be 1..%d, got %r" % (MAX_PAIRS, pairs))
    children, host_vars = {}, {}
    names = []
    for n in range(1, pairs + 1):
        a, b = subnet(n, "a"), subnet(n, "b")
        net_a, net_b = "%s-%d-a" % (prefix, n), "%s-%d-b" % (prefix, n)
        client, server = "%s-%d-client" % (prefix, n), "%s-%d-server" % (prefix, n)
        names.append((client, server))
        children["%s_%d" % (prefix, n)] = {
            "vars": {"lab_topology_networks": [{"name": net_a, "subnet": a + ".0/24"},
                                               {"name": net_b, "subnet": b + ".0/24"}]},
            "hosts": {
                client: {"lab_networks": [{"name": net_a, "address": a + ".3"},
                                          {"name": net_b, "address": b + ".3"}]},
                server: {"lab_networks": [{"name": net_a, "address": a + ".2"},
                                          {"name": net_b, "address": b + ".2"}]},
            },
        }
        host_vars[client] = {"mptcp_host_limits": {"subflows": 2, "add_addr_accepted": 1},
                             "mptcp_proxy_mode": "client",
                             "mptcp_proxy_listen": "127.0.0.1",   # iperf3 on the same host
                             "mptcp_proxy_remote": a + ".2:4444",
                             "mptcp_check_iperf3_server_host": server}
        host_vars[server] = {"mptcp_host_limits": {"subflows": 2, "add_addr_accepted": 0},
                             "mptcp_host_endpoints": [{"address": b + ".2", "dev": "eth1",
                                                       "flags": ["signal"]}],
                             "mptcp_proxy_mode": "server",
                             # every address subflows arrive on: path A and the signalled B
                             "mptcp_proxy_listen": [a + ".2", b + ".2"],
                             "mptcp_proxy_remote": "127.0.0.1:5201"}
        if ssh_key:
            host_vars[client]["ansible_host"] = a + ".3"
            host_vars[server]["ansible_host"] = a + ".2"
    clients = {c: None for c, _s in names}
    everyone = {h: None for pair in names for h in pair}
    if ssh_key:
        connection = {"ansible_connection": "ansible.builtin.ssh", "ansible_user": "root",
                      "ansible_ssh_private_key_file": ssh_key,
                      # every lab up makes new containers with new host keys on the same addresses
                      "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                                 "-o UserKnownHostsFile=/dev/null",
                      "ansible_python_interpreter": "/usr/bin/python3",
                      "lab_ssh_authorized_keys": ["{{ lookup('ansible.builtin.file', '%s.pub') }}"
                                                  % ssh_key]}
    else:
        connection = {"ansible_connection": "community.docker.docker"}
    hosts = {"all": {"children": {
        "lab": {"vars": connection, "children": {GROUP: {"children": children}}},
        "mptcp_hosts": {"hosts": dict(everyone)},
        "mptcp_proxies": {"hosts": dict(everyone)},
        "mptcp_checkers": {"hosts": clients},
    }}}
    group_vars = {
        # the controller (Docker API) uses the Python that runs Ansible, as in inventories/lab
        "all": {"ansible_python_interpreter": "{{ ansible_playbook_python if inventory_hostname "
                                              "== 'localhost' else 'auto_silent' }}"},
        "mptcp_proxies": {"mptcp_proxy_port": "{{ 5555 if mptcp_proxy_mode == 'client' "
                                              "else 4444 }}"},
        # seed 001's simple counts: iperf3 through the client proxy makes 2 MPTCP connections
        "mptcp_checkers": {"mptcp_check_traffic": "iperf3", "mptcp_check_target": "127.0.0.1",
                           "mptcp_check_target_port": 5555,
                           "mptcp_check_iperf3_server_port": 5201,
                           "mptcp_check_expected": {"CREATED": 2, "ESTABLISHED": 2,
                                                    "ANNOUNCED": 2, "SF_ESTABLISHED": 2,
                                                    "CLOSED": 2}},
    }
    return hosts, group_vars, host_vars


def write(out, pairs, ssh_key=None):
    """Write the inventory folder `out` (created; files of an earlier run replaced)."""
    hosts, group_vars, host_vars = inventory(pairs, ssh_key)
    for sub in ("group_vars", "host_vars"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        for name in os.listdir(os.path.join(out, sub)):
            os.unlink(os.path.join(out, sub, name))
    # JSON is YAML: no YAML library needed, and every value is quoted as it should be.
    with open(os.path.join(out, "hosts.yml"), "w", encoding="utf-8") as fh:
        fh.write("# generated by bench/scale_inventory.py: %d pairs of the simple topology\n"
                 % pairs)
        json.dump(hosts, fh, indent=2)
    for sub, data in (("group_vars", group_vars), ("host_vars", host_vars)):
        for name, values in data.items():
            with open(os.path.join(out, sub, name + ".yml"), "w", encoding="utf-8") as fh:
                json.dump(values, fh, indent=2)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, required=True, help="N client/server pairs (1..%d)"
                        % MAX_PAIRS)
    parser.add_argument("--out", required=True, help="inventory folder to write")
    parser.add_argument("--ssh-key", help="private key (PATH.pub beside it): reach the hosts "
                                          "over SSH instead of the Docker connection")
    args = parser.parse_args()
    if args.ssh_key and not os.path.exists(args.ssh_key + ".pub"):
        parser.error("--ssh-key %s: %s.pub does not exist" % (args.ssh_key, args.ssh_key))
    try:
        write(args.out, args.pairs, os.path.abspath(args.ssh_key) if args.ssh_key else None)
    except ValueError as exc:
        parser.error(str(exc))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
