#!/usr/bin/env bash
# Make sure headless Chromium is there for the browser tests (the docs page, the viewer, a live page).
# Installs Debian's `chromium` package when /usr/bin/chromium is missing and this runs as root
# with apt-get; otherwise it changes nothing, prints why, and exits 0 (the test then skips, or
# fails under CI with a clear message).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "ensure_chromium: $CHROMIUM is already installed" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_chromium: $CHROMIUM is missing and not running as root; not installing it" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: $CHROMIUM is missing and apt-get is not available; not installing it" >&2
    exit 0
fi

echo "ensure_chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
        || [ ! -x "$CHROMIUM" ]; then
    # Not fatal here: the browser test skips without it, or fails under CI saying why.
    echo "ensure_chromium: could not install chromium (see apt-get's output above)" >&2
    exit 0
fi
echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null || echo chromium installed)" >&2
