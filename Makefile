# multipath.mptcp: the commands README.md gives. Every target sets up what is missing first.
ANSIBLE_PLAYBOOK := .venv/bin/ansible-playbook

.PHONY: sevpn test bootstrap image lab-down bench

sevpn: bootstrap          ## the main job: SoftEther VPN over MPTCP in the Docker lab, verified
	$(ANSIBLE_PLAYBOOK) playbooks/sevpn.yml

test:                     ## every test (unit, kernel, lab scenarios, lint, sanity, build)
	./scripts/test.sh

bootstrap:                ## Debian packages, Docker engine, .venv, collection link
	./scripts/bootstrap.sh

image: bootstrap          ## the lab image (debootstrap + docker import), rebuilt only on change
	$(ANSIBLE_PLAYBOOK) playbooks/lab_image.yml

lab-down: bootstrap       ## remove every lab container and network
	$(ANSIBLE_PLAYBOOK) playbooks/lab_down.yml

# make bench BENCH=provisioning: only the provisioning and scale part (bench/provisioning.py).
BENCH ?=
bench: bootstrap          ## benchmarks (namespaces, provisioning, scale): bench/results/summary.{json,png}
	.venv/bin/python bench/mptcp_bench.py $(if $(BENCH),--only $(BENCH))
