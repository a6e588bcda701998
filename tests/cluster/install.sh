#!/usr/bin/env bash
# The Debian packages the cluster test starts (tests/cluster/daemons.py): SLURM with its accounting
# daemon, MUNGE, MariaDB (slurmdbd's database) and PostgreSQL (the MLflow server's). Root only.
# Debian starts a service when its package is installed: a policy-rc.d denies that for this install,
# since the test starts its own daemons on free ports and leaves none running.
set -euo pipefail
packages=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server postgresql)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "tests/cluster/install.sh: ${missing[*]} missing; run as root (apt-get install) or install them yourself" >&2
  exit 1
fi
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
