#!/usr/bin/env bash
# Set up tinyhil on a fresh Debian 12 / Ubuntu 22.04+ machine: the cross compiler, the
# emulators and the uploader from Debian's packages, then the harness in .venv/.
# Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
updated=""
apt_install() {   # install the packages not installed yet; returns apt-get's status
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ -n "$updated" ] || { $SUDO apt-get update -qq; updated=1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Required: the AVR boards, the native board and the harness itself.
REQUIRED=(
  gcc make binutils                # host builds: native DUT, simavr bridge, host references
  gcc-avr avr-libc binutils-avr    # AVR firmware
  simavr libsimavr-dev libelf-dev  # cycle-accurate AVR simulation (the bridge links libsimavr)
  qemu-system-misc                 # qemu-system-avr
  avrdude arduino-core-avr         # uploading to Arduinos (and Optiboot's source, for tests)
  python3-venv python3-dev
)
apt_install "${REQUIRED[@]}"

# Optional, each with the tests that skip (saying so) when its packages are missing: release
# names differ between Debian and Ubuntu versions.
apt_install clang-22 llvm-22 binutils-xtensa-lx106 \
  || echo "setup: no clang-22/llvm-22/binutils-xtensa-lx106 here: ESP32 firmware builds will be skipped"
apt_install arduino-builder arduino-ctags \
  || echo "setup: no arduino-builder here: the Arduino-sketch test will be skipped"
apt_install clang libclang-rt-dev \
  || echo "setup: no clang/libclang-rt-dev here: the parser fuzz test will be skipped"
apt_install chromium \
  || echo "setup: no chromium here: the HTML report's browser test will be skipped"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# pio: PlatformIO for users' projects; parallel: pytest-xdist; labgrid: boards on other hosts (its tests run a coordinator on loopback);
# ppk2: ppk2-api (GPL-2.0, pure Python), which the PPK2 tests drive against a simulated PPK2
.venv/bin/python -m pip install -q -e '.[dev,parallel,labgrid,pio,ppk2,models,int8]'
echo "tinyhil is installed in .venv/ (activate it with: . .venv/bin/activate)"
