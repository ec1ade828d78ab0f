#!/bin/sh
# bench/layers.sh: instructions and allocations per request of each of the gateway's own layers
# (gateway.BenchmarkLayers), counted by valgrind's callgrind, which, unlike wall-clock time, does not
# depend on what else the machine runs. Each sub-benchmark runs at two iteration counts; the difference
# divided by the difference of counts is its cost per request without the process's fixed costs.
#
#   bench/layers.sh                 # every sub-benchmark of BenchmarkLayers
#   bench/layers.sh 'HandlerChain$' # another benchmark of ./gateway (a regexp for -test.bench)
#
# Needs valgrind (apt-get install -y valgrind). The binary is built without cgo and run with
# GOMAXPROCS=1 and asynchronous preemption off (callgrind cannot follow Go's SIGURG preemption), and with
# the garbage collector off (GOGC=off unless set): where a collection falls would otherwise move a few
# hundred instructions from one sub-benchmark to another. The collector's share of the cost follows the
# bytes allocated, which the B/op column gives. N1 and N2 set the two iteration counts (1000, 6000).
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench/layers.sh: needs valgrind (apt-get install -y valgrind)" >&2; exit 2; }
pattern=${1:-Layers}
n1=${N1:-1000}
n2=${N2:-6000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go test -c -o "$tmp/gateway.test" ./gateway
# The sub-benchmarks, listed by a dry run (one iteration each).
names=$(GOMAXPROCS=1 "$tmp/gateway.test" -test.run='^$' -test.bench="$pattern" -test.benchtime=1x |
	awk '/^Benchmark/ { sub(/-[0-9]+$/, "", $1); print $1 }')
count() { # count NAME N: instructions of the whole process
	GOGC=${GOGC:-off} GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$tmp/gateway.test" -test.run='^$' -test.bench="^$(echo "$1" | sed 's,/,$/^,g')\$" -test.benchtime="${2}x" \
		-test.benchmem 2>&1 | awk -v out="$tmp/allocs" '
			/allocs\/op/ { for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") a = $i; else if ($(i+1) == "B/op") b = $i }
			/Collected :/ { ir = $NF }
			END { print a, b > out; print ir }'
}
printf '%-44s %12s %12s %10s\n' benchmark 'instr/op' 'B/op' 'allocs/op'
for name in $names; do
	i1=$(count "$name" "$n1")
	i2=$(count "$name" "$n2")
	read -r allocs bytes < "$tmp/allocs"
	printf '%-44s %12d %12s %10s\n' "$name" $(( (i2 - i1) / (n2 - n1) )) "$bytes" "$allocs"
done
