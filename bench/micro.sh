#!/usr/bin/env bash
# Microbenchmarks of dnsgate's core with allocation counts (ordo-one/benchmark), from bench/micro.
#
#   bash bench/micro.sh                                  # build in release and run every benchmark
#   bash bench/micro.sh --filter 'pipeline.*'            # arguments go to the benchmark plugin
#   bash bench/micro.sh run --filter 'sinkhole.*' --allocation-stacks   # where a benchmark allocates
#
# bench/micro is a package of its own so the root package (what CI builds) has no benchmark
# dependency. Its build folder, bench/micro/.build, is gitignored by the root .gitignore (.build*/).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkg="$here/micro"
exec swift package --package-path "$pkg" --scratch-path "$pkg/.build" benchmark "$@"
