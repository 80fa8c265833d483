#!/usr/bin/env bash
# Checks the Prometheus config and alert rules with promtool. promtool
# cannot be built with `go install` here (the module proxy refuses some of
# its dependencies), so it is taken from Debian's prometheus package,
# unpacked into a temporary directory rather than installed (installing
# would also set up a Prometheus server).
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=$(command -v promtool || true)
if [ -z "$promtool" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; })
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/x"
  promtool="$tmp/x/usr/bin/promtool"
fi
"$promtool" --version | head -1
"$promtool" check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && "$promtool" check config prometheus.yml)
