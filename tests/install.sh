#!/bin/sh
# SPDX-License-Identifier: MIT
#
# make check: an honest install.  make install DESTDIR=... from this build
# puts every file under DESTDIR, inside the folders configure was given
# (the prefix unless told otherwise), with the units and the daemon naming
# the installed paths, and make uninstall takes it all away again.  Then
# configure, in a scratch copy, is asked for its defaults: units, the
# sysusers.d entry and the config folder under the prefix, and no units
# at all --without-systemd.  TAP, like the Check suites.
set -u
builddir=${ACLHEAP_BUILDDIR:-.}
srcdir=${ACLHEAP_SRCDIR:-$(dirname "$0")/..}
# A clean make: not the jobserver or the variables of the make check
# that runs this.
unset MAKEFLAGS MFLAGS MAKELEVEL
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aclheap-install.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for l in "$@"; do
		printf '%s\n' "$l" | sed 's/^/# /'
	done
}
check() {	# check NAME DETAIL COMMAND...
	name=$1 detail=$2
	shift 2
	if "$@"; then ok "$name"; else not_ok "$name" "$detail"; fi
}

# The value of make variables in build folder $1, expanded as make does.
makevar() {
	printf 'aclheap-print-var:\n\t@echo $(%s)\n' "$2" |
	    make -s -C "$1" -f Makefile -f - aclheap-print-var
}

echo 1..12
for v in prefix bindir sbindir libdir includedir mandir sysconfdir \
    systemdsystemunitdir sysusersdir; do
	eval "$v=\$(makevar \"\$builddir\" $v)"
done
units=$(makevar "$builddir" systemdsystemunit_DATA)
d=$tmp/dest

# 1: the install itself.
if make -C "$builddir" install DESTDIR="$d" >"$tmp/install.out" 2>&1; then
	ok "make install DESTDIR=... succeeds"
else
	not_ok "make install DESTDIR=... succeeds" "$(tail -20 "$tmp/install.out")"
fi

# 2: nothing outside the configured folders.
stray=$(cd "$d" && find . -type f -o -type l | sed 's|^\.||' |
    while read -r f; do
	inside=no
	for dir in "$prefix" "$sysconfdir" "$systemdsystemunitdir" \
	    "$sysusersdir"; do
		case $dir in /*) ;; *) continue ;; esac	# "no"
		case $f in "$dir"/*) inside=yes ;; esac
	done
	[ $inside = yes ] || echo "$f"
    done)
check "every installed file lies under the prefix or a folder given to configure" \
    "outside: $stray" test -z "$stray"

# 3: what a user expects, where configure said.
missing=
for f in "$sbindir/aclheapd" "$bindir/aclheapctl" "$libdir/libaclheap.so.1" \
    "$libdir/libaclheap.a" "$includedir/aclheap.h" \
    "$libdir/pkgconfig/aclheap.pc" "$mandir/man8/aclheapd.8" \
    "$mandir/man1/aclheapctl.1" "$mandir/man3/aclmalloc.3" \
    "$sysconfdir/aclheap/aclheapd.conf.example"; do
	[ -e "$d$f" ] || missing="$missing $f"
done
check "daemon, tool, library, header, pkg-config, man pages, example" \
    "missing:$missing" test -z "$missing"

# 4: units and the sysusers.d entry exactly when configured to install them.
if [ -n "$units" ]; then
	missing=
	for f in "$systemdsystemunitdir/aclheapd.service" \
	    "$systemdsystemunitdir/aclheapd@.service" \
	    "$systemdsystemunitdir/aclheapd.socket" \
	    "$systemdsystemunitdir/aclheapd@.socket" \
	    "$sysusersdir/aclheap.conf"; do
		[ -e "$d$f" ] || missing="$missing $f"
	done
	check "units in $systemdsystemunitdir, sysusers.d entry in $sysusersdir" \
	    "missing:$missing" test -z "$missing"
else
	found=$(find "$d" -name 'aclheapd*.service' -o -name 'aclheapd*.socket' \
	    -o -path '*sysusers.d*')
	check "no units and no sysusers.d entry in a build without them" \
	    "found: $found" test -z "$found"
fi

# 5: the installed units (in a build without them, the built ones) name
# the installed daemon and config folder.
if [ -n "$units" ]; then
	svc=$d$systemdsystemunitdir/aclheapd.service
	tpl=$d$systemdsystemunitdir/aclheapd@.service
else
	svc=$builddir/systemd/aclheapd.service
	tpl=$builddir/systemd/aclheapd@.service
fi
check "the units start $sbindir/aclheapd, the template reads $sysconfdir/aclheap" \
    "$(grep -h '^ExecStart=' "$svc" "$tpl" 2>&1)" \
    sh -c 'grep -q "^ExecStart=$1/aclheapd " "$2" &&
        grep -q "^ExecStart=$1/aclheapd .*--config $3/aclheap/%i.conf\$" "$4"' \
    - "$sbindir" "$svc" "$sysconfdir" "$tpl"

# 6: the daemon's default config follows --sysconfdir.
help=$("$d$sbindir/aclheapd" --help 2>&1)
check "aclheapd --help names $sysconfdir/aclheap/aclheapd.conf" "$help" \
    sh -c 'printf "%s\n" "$1" | grep -qF " $2/aclheap/aclheapd.conf)"' \
    - "$help" "$sysconfdir"

# 7: pkg-config points at the prefix, not at DESTDIR.
pc=$(sed -n 's/^prefix=//p' "$d$libdir/pkgconfig/aclheap.pc" 2>&1)
check "aclheap.pc says prefix=$prefix" "it says: $pc" test "$pc" = "$prefix"

# 8: uninstall leaves no file behind.
make -C "$builddir" uninstall DESTDIR="$d" >"$tmp/uninstall.out" 2>&1
left=$(find "$d" -type f -o -type l)
check "make uninstall DESTDIR=... removes every file" "left: $left" \
    test -z "$left"

# 9-12: configure's defaults, in a copy of just what configure reads (a
# source tree configured in place refuses a second build folder), read
# back from config.status: no build, no make.
c=$tmp/src
mkdir -p "$c/shm" "$c/client" &&
    cp "$srcdir/configure" "$srcdir/Makefile.in" "$srcdir/config.h.in" "$c/" &&
    cp -R "$srcdir/build-aux" "$c/" &&
    cp "$srcdir/shm/shm.h" "$c/shm/" &&
    cp "$srcdir/client/aclheap.pc.in" "$c/client/" || exit 99
# What configure in folder $1 substituted for @$2@, expanded as make would.
cfgvar() {
	printf '@prefix@\n@exec_prefix@\n@%s@\n' "$2" >"$tmp/q.in"
	(cd "$1" && ./config.status --file=-:"$tmp/q.in" 2>/dev/null) | {
		read -r prefix
		read -r exec_prefix
		read -r v
		exec_prefix=$(eval "printf '%s' \"$exec_prefix\"")
		while :; do
			case $v in *'${'*) v=$(eval "printf '%s' \"$v\"") ;;
			*) break ;; esac
		done
		printf '%s\n' "$v"
	}
}
p=$tmp/prefix
if (cd "$c" && ./configure --prefix="$p" >"$tmp/configure.out" 2>&1); then
	cfg_units=$(cfgvar "$c" systemdsystemunitdir)
	cfg_sysu=$(cfgvar "$c" sysusersdir)
	cfg_etc=$(cfgvar "$c" sysconfdir)
	check "default unit folder is under the prefix" "it is $cfg_units" \
	    test "$cfg_units" = "$p/lib/systemd/system" -o "$cfg_units" = no
	check "default sysusers.d folder is under the prefix" "it is $cfg_sysu" \
	    test "$cfg_sysu" = "$p/lib/sysusers.d" -o "$cfg_sysu" = no
	check "default config folder is the prefix's etc" "it is $cfg_etc" \
	    test "$cfg_etc" = "$p/etc"
else
	for t in unit sysusers.d config; do
		not_ok "default $t folder" "$(tail -5 "$tmp/configure.out")"
	done
fi
if (cd "$c" && ./configure --prefix="$p" --without-systemd \
    >"$tmp/configure.out" 2>&1); then
	none=$(cfgvar "$c" INSTALL_UNITS_TRUE)$(cfgvar "$c" INSTALL_SYSUSERS_TRUE)
	check "--without-systemd installs no units and no sysusers.d entry" \
	    "units: $(cfgvar "$c" systemdsystemunitdir), sysusers.d: $(cfgvar "$c" sysusersdir)" \
	    test "$none" = "##"
else
	not_ok "--without-systemd configures" "$(tail -5 "$tmp/configure.out")"
fi
exit 0
