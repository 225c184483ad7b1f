#!/bin/sh
# SPDX-License-Identifier: MIT
# bench.sh: aclmalloc+aclfree pairs of 64 bytes from SBCL against the same
# loop in C, against a private daemon.  Prints ns per pair, best of 5 runs
# of N pairs each (N from $1, default 5000000), in CPU time so that other
# load on the machine counts less.  Run from a built tree:
#     sh lisp/bench.sh [N]
set -e
builddir=${ACLHEAP_BUILDDIR:-.}
srcdir=${ACLHEAP_SRCDIR:-$builddir}
n=${1:-5000000}
lib=$(cd "$builddir/.libs" && pwd)/libaclheap.so.1

dir=$(mktemp -d /tmp/aclheap-bench-lisp-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -f "$dir/state/heap.id" ] && rm -f "/dev/shm/aclheap-$(cat "$dir/state/heap.id")"
	rm -rf "$dir"
}
trap cleanup EXIT

"$builddir/aclheapd" --foreground --socket "$dir/sock" --state-dir "$dir/state" \
    --base 0x1100000000 --size 256M --config /dev/null >"$dir/log" 2>&1 &
pid=$!
while ! "$builddir/aclheapctl" -s "$dir/sock" status >/dev/null 2>&1; do
	kill -0 "$pid" || { cat "$dir/log"; exit 1; }
	sleep 0.02
done
export ACLHEAP_SOCKET="$dir/sock" ACLHEAP_LIBRARY="$lib"

cat >"$dir/loop.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <aclheap.h>

int
main(int argc, char **argv)
{
	long n = atol(argv[1]), i, r;
	double best = 1e30, ns;
	struct timespec a, b;

	aclfree(aclmalloc(64));		/* attach, lease */
	for (r = 0; r < 5; r++) {
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
		for (i = 0; i < n; i++) {
			void *p = aclmalloc(64);

			__asm__ volatile("" : : "r"(p) : "memory");
			if (aclfree(p) != 64)
				return 1;
		}
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
		ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
		if (ns < best)
			best = ns;
	}
	printf("C      aclmalloc+aclfree (64 B): %.1f ns/pair\n", best);
	return 0;
}
EOF
cc -O2 -I"$srcdir/client" -o "$dir/loop" "$dir/loop.c" "$lib" \
    -Wl,-rpath,"$(dirname "$lib")"
"$dir/loop" "$n"

CL_SOURCE_REGISTRY="(:source-registry (:directory \"$(cd "$srcdir/lisp" && pwd)/\") :inherit-configuration)" \
sbcl --noinform --non-interactive --no-sysinit --no-userinit \
    --eval '(require :asdf)' --eval '(asdf:load-system "aclheap")' \
    --eval "(defparameter *n* $n)" --eval '
(progn
  (defun pairs (n)
    (declare (optimize speed) (fixnum n))
    (dotimes (i n)
      (unless (= 64 (aclheap:aclfree (aclheap:aclmalloc 64)))
        (error "aclfree"))))
  (defun raw-pairs (n)
    (declare (optimize speed) (fixnum n))
    (dotimes (i n)
      (unless (= 64 (aclheap::%aclfree (aclheap::%aclmalloc 64)))
        (error "aclfree"))))
  (defun best (fn)
    (funcall fn 1000)
    (loop repeat 5
          minimize (let ((t0 (get-internal-run-time)))
                     (funcall fn *n*)
                     (/ (* (- (get-internal-run-time) t0)
                           (/ 1d9 internal-time-units-per-second))
                        *n*))))
  (format t "SBCL   aclmalloc+aclfree (64 B): ~,1F ns/pair~%" (best (function pairs)))
  (format t "SBCL   the bare foreign calls:   ~,1F ns/pair~%" (best (function raw-pairs))))' 2>&1 | grep -v '^;'
