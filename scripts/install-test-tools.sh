#!/usr/bin/env bash
# Installs what .ci/run needs beyond the Rust toolchain, from the package registries, so a
# fresh machine needs nothing installed by hand:
#   - HAProxy (Debian/Ubuntu package) for tests/load_balancer.rs, when it is not there yet;
#   - hadolint, yamllint, check-jsonschema and kubernetes-validate (PyPI, versions pinned in
#     scripts/lint-requirements.txt) into a virtual environment in target/lint-tools, used
#     by scripts/lint-deploy.sh.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing haproxy (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
# sed, not head: head exits after one line and, under pipefail, haproxy's SIGPIPE would fail CI.
PATH="$PATH:/usr/sbin" haproxy -v | sed -n 1p

venv=target/lint-tools
stamp="$venv/.requirements"
if ! cmp -s scripts/lint-requirements.txt "$stamp" 2>/dev/null; then
  echo "installing linters into $venv (pip)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/lint-requirements.txt
  cp scripts/lint-requirements.txt "$stamp"
fi
