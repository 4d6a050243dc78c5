#!/bin/sh
# What `make browser` needs beyond scripts/deps.sh, installed only when missing: Debian's
# chromium (headless) and libnss3-tools (certutil, to trust the test CA in an NSS
# database), and the npm package puppeteer-core that drives the browser (into
# spec/peers/node_modules, pinned in spec/peers/package.json).
set -e
cd "$(dirname "$0")/.."

missing=""
for p in chromium libnss3-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
missing=$(echo $missing)
if [ -n "$missing" ]; then
  echo "browser deps: installing $missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -d spec/peers/node_modules/puppeteer-core ]; then
  echo "browser deps: npm install (spec/peers)"
  (cd spec/peers && npm install --no-audit --no-fund --silent >/dev/null)
fi
