#!/usr/bin/env bash
# The SSH repository tests (tests/it/ssh.rs) start Debian's sshd on a loopback port with their
# own configuration; install openssh-server when it is missing. Nothing is started here (no
# service is enabled: the tests run their own sshd and stop it).
set -euo pipefail
[ -x /usr/sbin/sshd ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "sshd is missing and this is not root: install Debian's openssh-server (sudo apt-get install openssh-server)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y --no-install-recommends openssh-server >/dev/null; }
install || { apt-get update >/dev/null && install; }
[ -x /usr/sbin/sshd ] || { echo "openssh-server installed but /usr/sbin/sshd is missing" >&2; exit 1; }
