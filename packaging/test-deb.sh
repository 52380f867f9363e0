#!/usr/bin/env bash
# Check Fulcrum's Debian package (packaging/build-deb.sh builds it): what it
# holds, then install it, use what it installed, and purge it.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls target/debian/fulcrum_*.deb | tail -1)
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for want in ./usr/bin/fulcrum ./usr/lib/systemd/system/fulcrum.service ./etc/fulcrum/lvs.cf \
    ./usr/share/man/man1/fulcrum.1.gz ./usr/share/man/man1/fulcrum-run.1.gz ./usr/share/man/man5/lvs.cf.5.gz \
    ./usr/share/bash-completion/completions/fulcrum ./usr/share/doc/fulcrum/examples/lvs.cf \
    ./usr/share/doc/fulcrum/console.md; do
  grep -qx -- "$want" <<<"$contents" || fail "$deb lacks $want"
done
dpkg-deb -f "$deb" Package | grep -qx fulcrum || fail "not the fulcrum package"
[ "$(id -u)" = 0 ] || { echo "test-deb: SKIPPED the install (needs root)"; exit 0; }
trap 'dpkg --purge fulcrum >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb" >/dev/null
/usr/bin/fulcrum --version | grep -q '^fulcrum ' || fail "the installed binary does not run"
/usr/bin/fulcrum check >/dev/null 2>&1 || fail "the installed /etc/fulcrum/lvs.cf does not validate"
man -w lvs.cf | grep -q 'man5/lvs.cf.5' || fail "man lvs.cf finds no page"
man -w fulcrum-passwd >/dev/null || fail "man fulcrum-passwd finds no page"
grep -q 'ExecStart=/usr/bin/fulcrum run' /usr/lib/systemd/system/fulcrum.service || fail "the unit"
dpkg -s fulcrum | grep -q '^Conffiles:' || fail "/etc/fulcrum/lvs.cf is not a conffile"
dpkg --purge fulcrum >/dev/null
[ ! -e /usr/bin/fulcrum ] || fail "purge left /usr/bin/fulcrum"
echo "test-deb: ok: $deb installs, runs, validates its configuration, has its manual pages, and purges"
