#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the unit and client suites under valgrind's memcheck, from a build
# folder (make check-valgrind does).  Check forks a child for each test and
# valgrind follows it, so an error or a definite leak in a test makes that
# test "not ok" and this script fail.  Only the test processes run under
# valgrind: the aclheapd they exec runs natively (--trace-children=no).
# No suppressions: to memcheck the shared segment is an ordinary mapping.
set -u
build=${ACLHEAP_BUILDDIR:-$(pwd)}
ACLHEAP_BUILDDIR=$build
CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
export ACLHEAP_BUILDDIR CK_TIMEOUT_MULTIPLIER
status=0
for t in check_unit check_client; do
	log=$build/tests/$t.valgrind.log
	valgrind -q --error-exitcode=1 --leak-check=full \
	    --errors-for-leak-kinds=definite --trace-children=no \
	    "$build/tests/$t" >"$log" 2>&1
	rc=$?
	pass=$(grep -c '^ok' "$log")
	fail=$(grep -c '^not ok' "$log")
	echo "valgrind tests/$t: $pass passed, $fail failed"
	if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ] || [ "$pass" -eq 0 ]; then
		status=1
		grep -E '^not ok|^==[0-9]+==' "$log" | head -60
	fi
done
exit "$status"
