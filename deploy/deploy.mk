# Deployment checks (deploy/, docs/DEPLOY.md). Included by the Makefile: `include deploy/deploy.mk`.
# Neither is part of `make test` (minutes, and they start servers and HAProxy).
CLUSTER_TEST_ARGS ?=

.PHONY: cluster-test deploy-readonly-check
cluster-test: artifacts ## 3 bentoml serve replicas behind HAProxy: throughput 1-3 replicas, rolling restart, SIGKILL (about 4 min; needs apt-get install haproxy; CLUSTER_TEST_ARGS=--help)
	@command -v haproxy >/dev/null || { echo "make cluster-test needs HAProxy: apt-get install -y haproxy"; exit 1; }
	$(BIN)/python deploy/cluster_test.py $(CLUSTER_TEST_ARGS)

deploy-readonly-check: artifacts ## the Bento served on a read-only root with only deploy/k8s's emptyDir paths writable (root; about 1 min)
	$(BIN)/python deploy/readonly_check.py
