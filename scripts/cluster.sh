#!/bin/sh
# Thin wrapper: see scripts/cluster.ts (split deployment of dist/agentos on loopback; Ctrl-C stops it).
cd "$(dirname "$0")/.." || exit 1
PATH="$PWD/node_modules/.bin:$PATH" exec bun run scripts/cluster.ts "$@"
