#!/usr/bin/env bash
# Installs what scripts/demo/browser_test.sh drives: Debian's headless-capable
# Chromium and its WebDriver (chromedriver).
set -euo pipefail
if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    echo "chromium and chromedriver are installed"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver
