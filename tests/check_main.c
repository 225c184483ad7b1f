/* SPDX-License-Identifier: MIT */
/*
 * check_main.c: the runner.  Each test program is this file built with
 * SUITES set to its list of <module>_suite functions; output is TAP, one
 * line per test, which automake counts.  CK_RUN_SUITE=name and
 * CK_RUN_CASE=name narrow a run, as Check always allows.
 */
#include "config.h"

#include "tests/testutil.h"

int
main(void)
{
	static Suite *(*const suites[])(void) = { SUITES };

	return check_run(suites, sizeof(suites) / sizeof(suites[0]));
}
