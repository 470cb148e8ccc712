#!/usr/bin/env bash
# Lints what CI cannot run (no container engine, no cluster): the Dockerfile (hadolint), the
# compose file and the Kubernetes manifests (yamllint, then each against its schema: the
# Compose Specification vendored in check-jsonschema, Kubernetes' own with
# kubernetes-validate --strict), the workflow against GitHub's schema, and the HAProxy
# configuration (haproxy -c). Any finding fails. Tools: scripts/install-test-tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/lint-tools/bin
export PATH="$PATH:/usr/sbin"

echo "hadolint Dockerfile"
"$bin/hadolint" --failure-threshold info Dockerfile

echo "yamllint deploy/ .github/workflows/"
"$bin/yamllint" --strict -c .yamllint.yaml deploy/ .github/workflows/

echo "compose schema: deploy/compose.yaml"
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml

echo "Kubernetes schemas: deploy/kubernetes/"
"$bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml deploy/kubernetes/example-secret/*.yaml

echo "workflow schema: .github/workflows/"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml

echo "haproxy -c deploy/haproxy/haproxy.cfg"
LB_BIND=127.0.0.1:8080 LB_STATS_BIND=127.0.0.1:8404 REPLICA_1=127.0.0.1:8081 REPLICA_2=127.0.0.1:8082 \
  haproxy -c -f deploy/haproxy/haproxy.cfg
echo "deployment files: lint clean"
