#!/usr/bin/env bash
# The browser tests of the web page (tests/it/web_browser.rs) drive Debian's headless Chromium
# through chromedriver (WebDriver); install both when missing. Nothing is started here.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium or chromedriver is missing and this is not root: install Debian's chromium and chromium-driver (sudo apt-get install chromium chromium-driver)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null; }
install || { apt-get update >/dev/null && install; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null || { echo "chromium installed but chromium or chromedriver is missing from PATH" >&2; exit 1; }
