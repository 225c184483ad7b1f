#!/bin/sh
# SPDX-License-Identifier: MIT
# Generates configure and the Makefile templates; none of them is committed.
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf --install --force --warnings=all
