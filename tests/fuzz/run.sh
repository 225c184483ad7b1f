#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs each libFuzzer harness for SECONDS and reports how many inputs it
# executed.  Builds nothing: run it from a build folder configured with
# --enable-fuzzing after `make fuzz`, e.g.
#
#   ./configure CC=clang --enable-fuzzing && make -j2 fuzz
#   tests/fuzz/run.sh 60
#
# The committed seeds (tests/fuzz/corpus/NAME/) and past crashes
# (tests/fuzz/regress/NAME/) are read, never written: new inputs go to
# fuzz-work/NAME/.  A crash, a sanitizer report, a leak or a hang leaves
# its input as fuzz-work/NAME-crash-* (or -leak-, -timeout-, -oom-) and
# makes the script exit 1; copy that input into tests/fuzz/regress/NAME/
# so that `make check` replays it from then on.
set -u

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
work=${FUZZ_WORKDIR:-fuzz-work}
status=0

maxlen() {
	case $1 in
	image) echo 400000 ;;	# a seed image is about 330 KB
	*) echo 70000 ;;	# a frame is at most 64 KiB
	esac
}

mkdir -p "$work"
printf '%-10s %12s %8s  %s\n' harness executions seconds result
for name in frame dispatch image live; do
	prog=tests/fuzz/fuzz_$name
	log=$work/$name.log
	if [ ! -x "$prog" ]; then
		echo "$prog is not built (configure --enable-fuzzing, make fuzz)" >&2
		status=1
		continue
	fi
	mkdir -p "$work/$name"
	dirs=("$work/$name" "$here/corpus/$name")
	[ -d "$here/regress/$name" ] && dirs+=("$here/regress/$name")
	"$prog" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -max_len="$(maxlen "$name")" -print_final_stats=1 \
	    -artifact_prefix="$work/$name-" "${dirs[@]}" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' \
	    "$log" | tail -1)
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' \
	    "$log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		result="no finding"
	else
		result="FAILED (exit $rc)"
		status=1
	fi
	printf '%-10s %12s %8s  %s\n' "$name" "${execs:-?}" "${took:-?}" \
	    "$result"
	if [ "$rc" -ne 0 ]; then
		grep -E 'ERROR|SUMMARY|artifact|fuzz_[a-z]*:' "$log" | head -20
		echo "--- last lines of $log"
		tail -30 "$log"
		# The input itself, for a CI log that outlives the build.
		for a in "$work/$name"-*; do
			[ -f "$a" ] || continue
			echo "--- $a ($(wc -c <"$a") bytes), base64:"
			head -c 65536 "$a" | base64 -w 76
		done
	fi
done
exit "$status"
