#!/usr/bin/env bash
# Set up tinyhil on a fresh Debian 12 / Ubuntu 22.04+ machine: the cross compiler, the
# emulators and the uploader from Debian's packages, then the harness in .venv/.
# Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  gcc make binutils                      # host builds: native DUT, simavr bridge, host references
  gcc-avr avr-libc binutils-avr          # AVR firmware
  simavr libsimavr-dev libelf-dev        # cycle-accurate AVR simulation (the bridge links libsimavr)
  qemu-system-misc                       # qemu-system-avr
  avrdude arduino-core-avr               # uploading to Arduinos (and Optiboot's source, for tests)
  clang-22 llvm-22 binutils-xtensa-lx106 # ESP32 firmware: clang's Xtensa backend, the lx106 linker
  arduino-builder arduino-ctags          # building Arduino sketches (users' own firmware, tested)
  python3-venv python3-dev
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The DUT parser's fuzz test (libFuzzer with ASan/UBSan). Best effort: the package names
# differ between releases, and the test skips with its reason when they are missing.
FUZZ_PACKAGES=(clang libclang-rt-dev)    # Debian 12: clang-14, libclang-rt-14-dev
if ! command -v clang >/dev/null 2>&1 || ! dpkg-query -W -f='${Status}' libclang-rt-dev 2>/dev/null | grep -q "ok installed"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${FUZZ_PACKAGES[@]}" \
    || echo "setup: could not install ${FUZZ_PACKAGES[*]}: the parser fuzz test will be skipped"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# parallel: pytest-xdist; labgrid: boards on other hosts (its tests run a coordinator on loopback)
.venv/bin/python -m pip install -q -e '.[dev,parallel,labgrid]'
echo "tinyhil is installed in .venv/ (activate it with: . .venv/bin/activate)"
