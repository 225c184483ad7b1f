#!/bin/sh
# SPDX-License-Identifier: MIT
#
# make check: every source file carries its license line
# (build-aux/spdx-check says which do not).  TAP, like the Check suites.
srcdir=${ACLHEAP_SRCDIR:-$(dirname "$0")/..}
echo 1..1
if out=$("$srcdir/build-aux/spdx-check" "$srcdir" 2>&1); then
	echo "ok 1 - every source file names its license (SPDX)"
else
	echo "not ok 1 - every source file names its license (SPDX)"
	printf '%s\n' "$out" | sed 's/^/# /'
fi
