#!/bin/sh
# The Slurm tests start a one-node cluster on this machine: Debian's slurm-wlm (slurmctld, slurmd
# and the client commands) and munge (its authentication). Installed with apt-get when missing and
# running as root on Debian; otherwise prints the one line the tests skip with, and fails.
set -eu
missing=""
for c in slurmctld slurmd sbatch munged; do
  command -v "$c" >/dev/null 2>&1 || missing="yes"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Slurm (slurm-wlm, munge) is not installed and this is not root on Debian to install it (apt-get install slurm-wlm munge)"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
       { apt-get update -qq >/dev/null 2>&1 && apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1; }; }; then
  echo "apt-get could not install slurm-wlm and munge (no network or no Debian mirror?)"
  exit 1
fi
