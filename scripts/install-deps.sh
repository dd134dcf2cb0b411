#!/usr/bin/env bash
# Installs the Debian 12 packages coring needs to build, test and benchmark.
#
#   scripts/install-deps.sh           toolchain, GoogleTest/GoogleMock, Google Benchmark, spdlog,
#                                     llhttp's sources (coring::http's parser), OpenSSL 3
#                                     (coring::tls), and the real
#                                     HTTP clients of tests/http (curl, ab, h2load, wrk)
#   scripts/install-deps.sh --peers   also the comparison peers of benches/ (liburing-dev,
#                                     libboost1.81-dev, fio, nginx, h2o and wrk) and
#                                     gnuplot-nox, which draws `coring-bench all`'s chart
#
# Idempotent: it asks dpkg which packages are already installed and does nothing else
# when none is missing. Only then does it run `apt-get update` and install the missing
# ones, which needs root.
set -euo pipefail

usage() {
  echo "usage: $0 [--peers]" >&2
  exit 2
}

packages=(
  build-essential
  cmake
  ninja-build
  g++
  clang-14
  libclang-rt-14-dev  # clang's sanitizer runtimes (ASan, UBSan, TSan)
  clang-format-14
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libspdlog-dev
  pkg-config
  node-llhttp         # llhttp's C sources in /usr/share/llhttp, compiled into coring::http
  libssl-dev          # OpenSSL 3, coring::tls's cryptography
  openssl             # the openssl CLI: tests/tls runs s_client and s_server against coring
  # tests/http/clients_test.cpp runs coring::http's server against real clients
  curl
  python3
  apache2-utils       # ab
  nghttp2-client      # h2load --h1
  wrk
)
peers=(
  liburing-dev  # benches/ compares coring with liburing; the library never links it
  fio           # coring-bench file-randread-compare runs fio's io_uring engine as the peer
  nginx         # coring-bench http and http-static: the HTTP server peer
  h2o           # coring-bench http: the second HTTP server peer (Debian's h2o 2.2)
  wrk           # coring-bench http: the load generator
  # coring-bench echo: the Boost.Asio peers. Asio is header-only, and Debian packages
  # every Boost header in this one package (libboost-system1.81-dev and the other
  # component packages only add compiled libraries on top of it).
  libboost1.81-dev
  gnuplot-nox   # coring-bench all --json FILE: the chart, FILE with .png
)

for arg in "$@"; do
  case "$arg" in
    --peers) packages+=("${peers[@]}") ;;
    -h | --help) usage ;;
    *)
      echo "$0: unknown argument '$arg'" >&2
      usage
      ;;
  esac
done

# A package counts as present only when dpkg reports it fully installed ("install ok
# installed"); half-configured or removed-but-configured packages are reinstalled.
is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "$0: dpkg-query not found: this script supports Debian 12 (bookworm) and derivatives" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n env DEBIAN_FRONTEND=noninteractive)
  else
    echo "install-deps: installing packages needs root. Run as root, or run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
else
  as_root=(env DEBIAN_FRONTEND=noninteractive)
fi

"${as_root[@]}" apt-get update -q
# All at once; if that fails (one package this release lacks fails the whole set), one
# by one, so that every package that can be had is installed.
if ! "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null; then
  for pkg in "${missing[@]}"; do
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "$pkg" </dev/null ||
      echo "install-deps: apt-get could not install $pkg" >&2
  done
fi

still_missing=()
for pkg in "${missing[@]}"; do
  is_installed "$pkg" || still_missing+=("$pkg")
done
if ((${#still_missing[@]} > 0)); then
  echo "install-deps: apt-get finished but these are still not installed: ${still_missing[*]}" >&2
  exit 1
fi
echo "install-deps: installed ${missing[*]}"
