#!/bin/sh
# Installs what kvaudit needs to build and test on Debian 12 (run as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	ca-certificates build-essential cmake pkg-config python3 \
	libcjson-dev libpcre2-dev libcmocka-dev libcurl4-openssl-dev libssl-dev python3-cryptography \
	clang libclang-rt-14-dev chromium clang-tidy cppcheck valgrind >/dev/null
