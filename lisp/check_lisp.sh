#!/bin/sh
# SPDX-License-Identifier: MIT
# check_lisp.sh: the Common Lisp system against a real aclheapd, on SBCL.
#
# Starts the daemon on a private socket, state folder and base (above
# SBCL's dynamic space, which it asks SBCL for), runs the FiveAM suite
# (lisp/tests.lisp) with the build tree's libaclheap, on SBCL and, when it
# is installed, on ECL; then the saved-image scenario (SBCL): an image
# saved after filling blocks is started
#   1. at once;
#   2. after the daemon was killed with SIGKILL and restarted;
#   3. after a "reboot": SIGKILL, the segment removed from /dev/shm, the
#      daemon restarted so that it loads its image;
# and each time must find the same blocks at the same addresses with the
# same bytes.  Then it must refuse to start
#   4. against another heap served on the same socket;
#   5. when its heap's range is taken (a dynamic space grown over it).
#
# Exit 0 when all passed, 1 when something failed, 77 (skip) with the
# reason when sbcl, cl-cffi or cl-fiveam is missing, or the library is
# built with AddressSanitizer.  make check runs it
# with ACLHEAP_BUILDDIR and ACLHEAP_SRCDIR set.

builddir=${ACLHEAP_BUILDDIR:-.}
srcdir=${ACLHEAP_SRCDIR:-$builddir}
size=67108864
max=$((size * 2))	# room for the image test to grow the heap

skip() {
	echo "SKIP: $*"
	exit 77
}

command -v sbcl >/dev/null 2>&1 || skip "sbcl not found (apt-get install sbcl)"
lisp() {
	sbcl --noinform --non-interactive --no-sysinit --no-userinit \
	    --eval '(require :asdf)' "$@"
}
for sys in cffi fiveam; do
	lisp --eval "(uiop:quit (if (asdf:find-system \"$sys\" nil) 0 1))" \
	    >/dev/null 2>&1 ||
	    skip "the Lisp system $sys is not installed (apt-get install cl-cffi cl-fiveam)"
done

lib=$builddir/.libs/libaclheap.so.1
[ -f "$lib" ] || { echo "FAIL: $lib is not built"; exit 1; }
lib=$(cd "$(dirname "$lib")" && pwd)/libaclheap.so.1
# A library built with --enable-sanitizers needs the ASan runtime first in
# the process: dlopen() from SBCL refuses it, and SBCL with the runtime
# preloaded crashes in ASan's own unmapping.
if ldd "$lib" 2>/dev/null | grep -q libasan; then
	skip "libaclheap is built with AddressSanitizer, which SBCL cannot load"
fi

dir=$(mktemp -d /tmp/aclheap-test-lisp-XXXXXX) || exit 1
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	for s in "$dir"/state*; do
		[ -f "$s/heap.id" ] && rm -f "/dev/shm/aclheap-$(cat "$s/heap.id")"
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The heap goes 1 GiB above SBCL's dynamic space, on a GiB boundary.
space=$(lisp --eval '(format t "~D ~D~%" sb-vm:dynamic-space-start (sb-ext:dynamic-space-size))') ||
    { echo "FAIL: cannot ask sbcl for its dynamic space"; exit 1; }
set -- $space
start=$1
gib=1073741824
base=$(( ($1 + $2 + gib - 1) / gib * gib + gib ))
base_hex=$(printf '0x%x' "$base")
# A dynamic space that covers the heap's range, for step 5.
cover_mb=$(( (base - start + size) / 1048576 + 64 ))

ACLHEAP_SOCKET=$dir/sock
ACLHEAP_LIBRARY=$lib
ACLHEAP_TEST_BASE=$base_hex
ACLHEAP_TEST_SIZE=$size
ACLHEAP_TEST_MAX=$max
ACLHEAP_HELPER=$(cd "$builddir" && pwd)/tests/helper_client
CL_SOURCE_REGISTRY="(:source-registry (:directory \"$(cd "$srcdir/lisp" && pwd)/\") :inherit-configuration)"
export ACLHEAP_SOCKET ACLHEAP_LIBRARY ACLHEAP_TEST_BASE ACLHEAP_TEST_SIZE \
    ACLHEAP_TEST_MAX ACLHEAP_HELPER CL_SOURCE_REGISTRY
# Nothing from the daemon ever waits long in these tests.
ACLHEAP_RECONNECT_TIMEOUT=2
export ACLHEAP_RECONNECT_TIMEOUT

failed=0
pass() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; failed=1; }

# Starts aclheapd with the state folder $1; ready once it answers status.
start_daemon() {
	"$builddir/aclheapd" --foreground --socket "$dir/sock" \
	    --state-dir "$1" --base "$base_hex" --size "$size" \
	    --max-size "$max" \
	    --config /dev/null --log-level debug >>"$dir/daemon.log" 2>&1 &
	pid=$!
	tries=0
	while ! "$builddir/aclheapctl" -s "$dir/sock" status >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || [ $tries -ge 1000 ]; then
			echo "FAIL: aclheapd did not start:"
			cat "$dir/daemon.log"
			exit 1
		fi
		tries=$((tries + 1))
		sleep 0.02
	done
}

stop_daemon() {
	kill "-$1" "$pid"
	wait "$pid" 2>/dev/null
	pid=
}

# Starts the saved image (extra runtime options in "$@"); its status, and
# its output in $dir/image.out.
run_image() {
	sbcl --core "$dir/image.core" --noinform "$@" --end-runtime-options \
	    >"$dir/image.out" 2>&1
}

start_daemon "$dir/state"
echo "heap at $base_hex, SBCL's dynamic space from $(printf '0x%x' "$start")"

# The suite.
if lisp --eval '(asdf:load-system "aclheap/tests")' \
    --eval '(uiop:quit (if (aclheap-tests:run-suite) 0 1))' \
    >"$dir/suite.out" 2>&1; then
	pass "FiveAM suite"
	grep -E '^ *(Did|Pass|Skip|Fail)' "$dir/suite.out"
else
	fail "FiveAM suite"
	grep -v '^; ' "$dir/suite.out" | tail -80
fi

# The same suite on ECL, the second implementation, where it is installed
# (CI installs it); the saved-image tests are SBCL's.
if command -v ecl >/dev/null 2>&1; then
	if ecl --norc --eval '(require :asdf)' \
	    --eval '(asdf:load-system "aclheap/tests")' \
	    --eval '(ext:quit (if (aclheap-tests:run-suite) 0 1))' \
	    >"$dir/ecl.out" 2>&1; then
		pass "FiveAM suite on ECL"
		grep -E '^ *(Did|Pass|Skip|Fail)' "$dir/ecl.out"
	else
		fail "FiveAM suite on ECL"
		grep -v '^;' "$dir/ecl.out" | tail -80
	fi
else
	echo "# ecl not installed: the suite ran on SBCL only"
fi

# The saved image.
if lisp --eval '(asdf:load-system "aclheap/tests")' \
    --eval "(aclheap-tests:save-image \"$dir/image.core\")" \
    >"$dir/save.out" 2>&1 && [ -f "$dir/image.core" ]; then
	pass "image saved"
else
	fail "image saved"
	grep -v '^; ' "$dir/save.out" | tail -40
	exit 1
fi

image_ok() {
	if run_image && grep -q '^image ok' "$dir/image.out"; then
		pass "$1: $(cat "$dir/image.out")"
	else
		fail "$1"
		cat "$dir/image.out"
	fi
}

image_refused() {
	what=$1
	want=$2
	shift 2
	if run_image "$@"; then
		fail "$what: the image started"
		cat "$dir/image.out"
	elif grep -q '^aclheap: this image cannot start: ' "$dir/image.out" &&
	    grep -q "$want" "$dir/image.out" &&
	    ! grep -q '^image ok' "$dir/image.out"; then
		pass "$what: $(cat "$dir/image.out")"
	else
		fail "$what: not the expected message ($want)"
		cat "$dir/image.out"
	fi
}

image_ok "image restarted"

stop_daemon KILL
start_daemon "$dir/state"
image_ok "image restarted after SIGKILL of aclheapd"

stop_daemon KILL
shm=/dev/shm/aclheap-$(cat "$dir/state/heap.id")
if rm "$shm"; then
	start_daemon "$dir/state"
	image_ok "image restarted after a reboot (segment removed)"
else
	fail "no segment $shm to remove"
fi

# A heap that grew since the image was saved is the same heap.
if "$builddir/aclheapctl" -s "$dir/sock" grow "$max" >"$dir/grow.out" 2>&1
then
	image_ok "image restarted after the heap grew ($(cat "$dir/grow.out"))"
else
	fail "aclheapctl grow $max"
	cat "$dir/grow.out"
fi

stop_daemon TERM
start_daemon "$dir/state2"
image_refused "image against another heap" "serves a different heap"
stop_daemon TERM

start_daemon "$dir/state"
image_refused "image whose range is taken" "cannot attach the heap" \
    --dynamic-space-size "$cover_mb"
# And the same image still starts where nothing is in the way.
image_ok "image restarted once more"

# The example of examples/: saved, started, started again after a SIGKILL
# of the daemon, at the same address each time.
ex=0
CORE=$dir/example.core lisp --load "$srcdir/examples/saved-image.lisp" \
    >"$dir/example-save.out" 2>&1 || ex=1
sbcl --core "$dir/example.core" --noinform >"$dir/example1.out" 2>&1 || ex=1
stop_daemon KILL
start_daemon "$dir/state"
sbcl --core "$dir/example.core" --noinform >"$dir/example2.out" 2>&1 || ex=1
if [ $ex = 0 ] && grep -q '^table at #x' "$dir/example1.out" &&
    cmp -s "$dir/example1.out" "$dir/example2.out"; then
	pass "examples/saved-image.lisp: $(cat "$dir/example2.out")"
else
	fail "examples/saved-image.lisp"
	grep -v '^; ' "$dir/example-save.out" | tail -20
	cat "$dir/example1.out" "$dir/example2.out" 2>/dev/null
fi
stop_daemon TERM

exit $failed
