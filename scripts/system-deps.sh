#!/usr/bin/env bash
# System tools the tests use as real components: Prometheus (promtool and the server) to validate and
# scrape /metrics, Redis for the shared rate-limit store (single and cluster) and the BullMQ consumer,
# RabbitMQ for the AMQP consumer, HAProxy in front of a fleet of instances (the tests start their own
# Redis, RabbitMQ and HAProxy on free ports), and Chromium (headless) to open the benchmark report's
# SVG charts as a reader's browser would. Installed from Debian when missing.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" != 0 ] && sudo=sudo
echo "==> installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their own daemons where a service manager runs; the tests start their own.
