#!/usr/bin/env bash
# Build Fulcrum's Debian package: the manual pages and shell completions from
# the binary itself, then `cargo deb`. Needs cargo-deb
# (`cargo install cargo-deb --locked`).
#
#   packaging/build-deb.sh                 # release build → target/debian/fulcrum_*.deb
#   packaging/build-deb.sh --profile dev   # package the binary the tests built (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = "--profile" ]; then profile=$2; fi
dir=release
[ "$profile" = dev ] && dir=debug
if [ "$profile" = release ]; then
  cargo build --release --locked -p fulcrum
fi
bin=target/$dir/fulcrum
rm -rf packaging/generated
mkdir -p packaging/generated/man packaging/generated/completions
"$bin" manpages packaging/generated/man
"$bin" completions bash > packaging/generated/completions/fulcrum.bash
"$bin" completions zsh > packaging/generated/completions/_fulcrum
"$bin" completions fish > packaging/generated/completions/fulcrum.fish
cargo deb -p fulcrum --no-build --profile "$profile" --locked
