#!/usr/bin/env bash
# The browser tests/integration/test_click_browser.py drives: Debian's chromium and chromium-driver (one version, from one
# package source, so the driver always matches the browser). Installed with apt-get where that is possible (root,
# a Debian-like system); elsewhere the browser tests skip and say why. Called by `make unit` before pytest.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "chromium/chromedriver not found and not installable here (needs apt-get and root):" \
    "the click.js browser tests will be skipped" >&2
  exit 0
fi
echo "installing chromium and chromium-driver for the click.js browser tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
