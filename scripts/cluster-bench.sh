#!/usr/bin/env bash
# cluster-bench.sh measures what a second node brings: the same load from
# "parley bench" against one node, then two, both on PostgreSQL and Redis
# (--db postgres://... --broker redis://...), with the connections spread
# over the nodes in turn. Results go to docs/bench/cluster/cluster-NODES.json (the
# bench's JSON line, tagged, with each node's CPU time) and .txt (its
# summary); docs/deploy.md cites them.
#
# Usage: scripts/cluster-bench.sh [BENCH FLAGS...]
#   default flags: --conns 1000 --rooms 10 --senders 1 --rate 0 --duration 10s
# Environment: PG (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable),
# REDIS (default redis://127.0.0.1:6379/0), OUT (default docs/bench/cluster), NODES
# (default "1 2"). Each run gets a fresh PostgreSQL schema and Redis key
# prefix, dropped at the end. Servers listen on 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-docs/bench/cluster}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
REDIS=${REDIS:-redis://127.0.0.1:6379/0}
NODES=${NODES:-1 2}
FLAGS=("$@")
if [ ${#FLAGS[@]} -eq 0 ]; then
	FLAGS=(--conns 1000 --rooms 10 --senders 1 --rate 0 --duration 10s)
fi
mkdir -p "$OUT"
SERVER_FLAGS=(--send-rate 1000000 --send-burst 1000000 --outbox 4096 --log-level warn)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-cluster.XXXXXX")
bin=$tmp/parley
tag=cb$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
schema=parley_$tag
prefix=$tag:
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	psql "$PG" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	redis-cli -u "$REDIS" --scan --pattern "$prefix*" 2>/dev/null | xargs -r redis-cli -u "$REDIS" del >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { printf '%s cluster-bench.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

go build -o "$bin" ./cmd/parley
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
sep='?'
case $PG in *\?*) sep='&' ;; esac
db="$PG${sep}search_path=$schema"
psql "$PG" -q -c "CREATE SCHEMA $schema" >/dev/null
conns=1000
for ((i = 0; i < ${#FLAGS[@]}; i++)); do
	if [ "${FLAGS[$i]}" = --conns ]; then conns=${FLAGS[$((i + 1))]}; fi
done
log "creating $conns sessions in schema $schema"
"$bin" admin sessions --db "$db" --count "$conns" >"$tmp/tokens"

# start_node I: node I on a loopback port chosen by the kernel; sets ADDR.
start_node() {
	local i=$1
	(
		ulimit -n 20000 2>/dev/null || true
		exec "$bin" --addr 127.0.0.1:0 --db "$db" --broker "$REDIS" --redis-prefix "$prefix" --node-id "node$i" "${SERVER_FLAGS[@]}"
	) >"$tmp/node$i.out" 2>"$tmp/node$i.log" &
	pids+=($!)
	ADDR=
	for _ in $(seq 100); do
		ADDR=$(sed -n 's|^listening on http://||p' "$tmp/node$i.out")
		if [ -n "$ADDR" ]; then return 0; fi
		sleep 0.1
	done
	log "node $i did not start:"
	cat "$tmp/node$i.log" >&2
	return 1
}

for n in $NODES; do
	pids=()
	targets=
	for i in $(seq "$n"); do
		start_node "$i"
		targets="${targets:+$targets,}http://$ADDR"
	done
	declare -A t0=()
	for p in "${pids[@]}"; do t0[$p]=$(proc_ticks "$p"); done
	log "$n node(s): parley bench ${FLAGS[*]}"
	rc=0
	timeout -k 10 -s INT 120 "$bin" bench --targets "$targets" --tokens "$tmp/tokens" --room-prefix "n$n" "${FLAGS[@]}" \
		>"$tmp/bench$n.out" 2>"$tmp/bench$n.err" || rc=$?
	cpus=
	for p in "${pids[@]}"; do
		cpus="${cpus:+$cpus,}$(awk -v a="${t0[$p]}" -v b="$(proc_ticks "$p")" 'BEGIN {printf "%.2f", (b - a) / 100}')"
	done
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	result=$(grep '^{' "$tmp/bench$n.out" | tail -n 1 || true)
	{
		printf '{"name":"cluster-%s","nodes":%s,"commit":"%s","date":"%s"' "$n" "$n" "$commit" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		printf ',"command":"parley bench --targets NODES --tokens TOKENS(%s) %s"' "$conns" "${FLAGS[*]}"
		printf ',"server_command":"parley --db postgres://... --broker redis://... %s"' "${SERVER_FLAGS[*]}"
		printf ',"exit_code":%s,"node_cpu_seconds":[%s]' "$rc" "$cpus"
		if [ -n "$result" ]; then printf ',"result":%s' "$result"; fi
		printf '}\n'
	} >"$OUT/cluster-$n.json"
	grep -v '^{' "$tmp/bench$n.out" >"$OUT/cluster-$n.txt" || true
	sed 's/^/    /' "$OUT/cluster-$n.txt" >&2
	if [ -z "$result" ]; then tail -n 5 "$tmp/bench$n.err" >&2; fi
done
log "done; results in $OUT/cluster-*.json"
