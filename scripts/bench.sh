#!/usr/bin/env bash
# bench.sh measures the performance targets of docs/benchmarks.md on this
# machine: it builds parley, and for each run starts a fresh server on a
# SQLite copy of a database of benchmark sessions, drives it with
# "parley bench --pid", and writes the bench's JSON line, tagged with the
# target, to docs/bench/NAME.json (CPU and heap profiles of some runs go to
# docs/bench/profiles/). "go run ./scripts/benchreport" turns the files into
# the tables of docs/benchmarks.md. Target 6 also runs with SQLite's
# synchronous=FULL (--sqlite-synchronous full), with the cgo SQLite driver
# (go build -tags sqlite_cgo: a C compiler is needed) and against
# PostgreSQL: its Go benchmark, and a server on a fresh schema dropped
# afterwards.
#
# Usage: scripts/bench.sh [TARGET...]
#   TARGET is 1 2 3 4 5 6 7 8 or go (the Go micro-benchmarks: the hub's
#   fan-out, the SQLite store's appends, the server's frame encoding and
#   decoding, the load tool's decoding, and the machine's own floor: a
#   loopback write between two processes that were idle, and back to
#   back, and a bare relay at the loads of targets 3 and 4, with writes and
#   through io_uring); no argument runs them all, in about 13 minutes.
# Environment: OUT (default docs/bench) is where results go; REF (default
# HEAD) is the commit to build and test, exported with git archive so that
# edits under way in the working tree neither break nor colour the run;
# REF=. measures the working tree as it is. REPEAT (default 3) is how many
# times targets 3 and 7 run, each on a fresh server (NAME, NAME-run2, ...):
# their figures follow the machine's hour from run to run, and benchreport
# judges them by the median of the runs. PARLEY_BENCH_POSTGRES (default
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable) is the PostgreSQL
# database of target 6; psql must reach it.
# PERF=1 records, in place of the pprof profiles, every run's whole machine
# with perf (perf record -g -a) for 5 s from 3 s after sending began, and
# writes what scripts/perfsplit makes of it, kernel stacks included, to
# OUT/profiles/NAME-perf.txt; perf must be installed and allowed to record
# every CPU. Such runs are slowed by the recording: they explain figures,
# they do not replace them.
#
# Servers listen on 127.0.0.1 only, every run is bounded by timeout, and the
# load tool runs on the same machine as the server, sharing its cores.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-docs/bench}
ALL=(1 2 3 4 5 6 7 8 go)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	targets=("${ALL[@]}")
fi
for t in "${targets[@]}"; do
	case " ${ALL[*]} " in
	*" $t "*) ;;
	*)
		echo "bench.sh: unknown target $t (want one of: ${ALL[*]})" >&2
		exit 2
		;;
	esac
done
wants() { case " ${targets[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
REPEAT=${REPEAT:-3}
case $REPEAT in
'' | *[!0-9]* | 0*)
	echo "bench.sh: REPEAT=$REPEAT: want a whole number of runs, at least 1" >&2
	exit 2
	;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-bench.XXXXXX")
bin=$tmp/parley
bin_cgo=$tmp/parley-cgo # built with -tags sqlite_cgo, for target 6
SERVER_PID=
PROF_PID=
PG_URL=${PARLEY_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
PG_SCHEMA= # created by target 6, dropped on exit
cleanup() {
	if [ -n "$PROF_PID" ]; then kill "$PROF_PID" 2>/dev/null || true; fi
	if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
	if [ -n "$PG_SCHEMA" ]; then psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s bench.sh: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# json_str prints $1 as a JSON string.
json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/\\t}
	s=${s//$'\n'/\\n}
	printf '"%s"' "$s"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# busy_ticks prints the CPU time the whole machine has spent busy,
# task_ticks that spent running processes (user and system, without
# interrupts), and proc_ticks that of process $1, in clock ticks (1/100 s).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
task_ticks() { awk '/^cpu / {print $2 + $3 + $4; exit}' /proc/stat; }
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# db_ticks prints the CPU time of the PostgreSQL processes (0 without
# SERVER_DB): with the server on PostgreSQL they work for it, and are not
# other people's load. Backends that ended meanwhile are missed.
db_ticks() {
	if [ -z "$SERVER_DB" ]; then
		echo 0
		return
	fi
	local p t=0
	for p in $(pgrep -x postgres || true); do t=$((t + $(proc_ticks "$p"))); done
	echo "$t"
}

# wait_quiet waits, up to a minute, until the machine spends at most 15 %
# of a second busy (other people's tests share it), and prints that share.
wait_quiet() {
	local b0 b1 i0 i1 busy=100
	for _ in $(seq 30); do
		b0=$(busy_ticks) i0=$(awk '/^cpu / {print $5 + $6; exit}' /proc/stat)
		sleep 1
		b1=$(busy_ticks) i1=$(awk '/^cpu / {print $5 + $6; exit}' /proc/stat)
		busy=$((100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1)))
		if [ "$busy" -le 15 ]; then break; fi
		log "the machine is $busy % busy with something else; waiting"
		sleep 1
	done
	echo "$busy"
}

mkdir -p "$OUT/profiles"
REF=${REF:-HEAD}
src=.
if [ "$REF" = . ]; then
	commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit (working tree, modified)"; fi
else
	commit=$(git rev-parse --short "$REF^{commit}")
	src=$tmp/src
	mkdir "$src"
	git archive "$commit" | tar -x -C "$src"
fi
log "building parley $commit into $tmp"
(cd "$src" && go build -o "$bin" ./cmd/parley)
if [ -n "${PERF:-}" ]; then
	command -v perf >/dev/null || { log "PERF is set, but perf is not installed"; exit 2; }
	go build -o "$tmp/perfsplit" ./scripts/perfsplit # of this tree: REF may have none
fi
if wants 6; then # target 6 also measures the cgo SQLite driver
	log "building parley with -tags sqlite_cgo (needs a C compiler)"
	(cd "$src" && go build -tags sqlite_cgo -o "$bin_cgo" ./cmd/parley)
fi

# The machine, as commands report it.
{
	printf '{"target":"machine"'
	printf ',"cpu_model":%s' "$(json_str "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')")"
	printf ',"cores":%s' "$(nproc)"
	printf ',"mem_total_kib":%s' "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
	printf ',"go_version":%s' "$(json_str "$(go version)")"
	printf ',"kernel":%s' "$(json_str "$(uname -srm)")"
	printf ',"open_files_hard_limit":%s' "$(json_str "$(ulimit -Hn)")"
	printf ',"tmp_filesystem":%s' "$(json_str "$(df -T "$tmp" | awk 'NR==2 {print $2}')")"
	printf ',"git_commit":%s' "$(json_str "$commit")"
	printf ',"date":%s' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
	printf ',"loadavg_at_start":%s' "$(json_str "$(loadavg)")"
	printf ',"targets":%s' "$(json_str "${targets[*]}")" # of the latest invocation
	printf '}\n'
} >"$OUT/machine.json"

# One database of benchmark users with a session each; every server gets a
# fresh copy of it. Runs use the first N tokens.
needed=1000
if wants 7; then needed=5000; fi
if wants 4 || wants 5 || wants 8; then needed=19000; fi
if wants 1 || wants 2 || wants 3 || wants 4 || wants 5 || wants 6 || wants 7 || wants 8; then
	log "creating $needed users and sessions (parley admin sessions)"
	"$bin" admin sessions --db "$tmp/template.db" --count "$needed" >"$tmp/tokens.all"
fi
# Target 4's room has its 10,000 members before the run: a second
# database, whose users are all members of the bench's first room.
if wants 4; then
	log "creating 10000 users and sessions, members of bench-0 (parley admin sessions --room)"
	"$bin" admin sessions --db "$tmp/members.db" --count 10000 --room bench-0 >"$tmp/tokens.members"
fi
TEMPLATE=$tmp/template.db  # the database the servers get a copy of
TOKENS_ALL=$tmp/tokens.all # its sessions
tokens() { # tokens N: a file of the first N tokens
	head -n "$1" "$TOKENS_ALL" >"$tmp/tokens.$1"
	echo "$tmp/tokens.$1"
}

SERVER_FLAGS="--send-rate 1000000 --send-burst 1000000 --outbox 4096 --log-level info"
SERVER_ENV=() # for the next run only, as VAR=value
SERVER_DB=    # if set, the servers' --db (a PostgreSQL URL) instead of a copy of the SQLite template
SERVER_DB_DESC=FRESH.db
SERVER_BIN=      # if set, the server binary instead of $bin
SERVER_BIN_DESC= # and how the command shows it
ADDR=
DEBUG=

# start_server NAME: a fresh copy of the database (or SERVER_DB), a server
# on a loopback port chosen by the kernel, with pprof on another.
start_server() {
	local name=$1 db=$SERVER_DB
	if [ -z "$db" ]; then
		db=$tmp/$name.db
		cp "$TEMPLATE" "$db"
		if [ -e "$TEMPLATE-wal" ]; then cp "$TEMPLATE-wal" "$db-wal"; fi
	fi
	# shellcheck disable=SC2086
	(
		ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
		exec env "${SERVER_ENV[@]}" "${SERVER_BIN:-$bin}" --addr 127.0.0.1:0 --debug-addr 127.0.0.1:0 --db "$db" $SERVER_FLAGS
	) >"$tmp/$name.server.out" 2>"$tmp/$name.server.log" &
	SERVER_PID=$!
	ADDR= DEBUG=
	for _ in $(seq 100); do
		ADDR=$(sed -n 's|^listening on http://||p' "$tmp/$name.server.out")
		DEBUG=$(grep -o '"msg":"pprof listening","addr":"127\.0\.0\.1:[0-9]*"' "$tmp/$name.server.log" | grep -o '127\.0\.0\.1:[0-9]*' || true)
		if [ -n "$ADDR" ] && [ -n "$DEBUG" ]; then return 0; fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
		sleep 0.1
	done
	log "server for $name did not start:"
	cat "$tmp/$name.server.log" >&2
	return 1
}

stop_server() {
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 150); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# profile PATTERN DELAY KIND [SECONDS] asks the next bench run for a
# profile of its server: once the bench's progress shows PATTERN, wait
# DELAY seconds, then take a KIND profile: cpu (for SECONDS), heap (with
# the runtime's memory statistics) or perf (of the whole machine, for
# SECONDS; see PERF).
PROF_ARGS=()
profile() { PROF_ARGS=("$@"); }

# per_message asks the next bench run for what it saw of each message
# (parley bench --messages), saved as NAME-messages.csv.
PER_MESSAGE=
per_message() { PER_MESSAGE=1; }

# profile_when NAME PATTERN DELAY KIND [SECONDS] takes that profile in the
# background.
profile_when() {
	local name=$1 pattern=$2 delay=$3 kind=$4 secs=${5:-5}
	(
		for _ in $(seq 1500); do
			if grep -Eq -- "$pattern" "$tmp/$name.err" 2>/dev/null; then break; fi
			sleep 0.2
		done
		sleep "$delay"
		case $kind in
		cpu) curl -sf -o "$tmp/$name.cpu.pb.gz" "http://$DEBUG/debug/pprof/profile?seconds=$secs" ;;
		perf)
			echo "$SERVER_PID" >"$tmp/$name.perf.pid"
			perf record -g -a -o "$tmp/$name.perf.data" -- sleep "$secs" >/dev/null 2>&1
			;;
		heap)
			curl -sf -o "$tmp/$name.heap.pb.gz" "http://$DEBUG/debug/pprof/heap?gc=1"
			curl -sf "http://$DEBUG/debug/pprof/heap?debug=1" |
				grep -E '^# (Sys|HeapSys|HeapAlloc|HeapInuse|HeapIdle|HeapReleased|Stack|MSpan|GCSys|OtherSys|NumGC|GCCPUFraction) ' >"$tmp/$name.memstats.txt"
			curl -sf "http://$DEBUG/debug/pprof/goroutine?debug=1" | head -1 >>"$tmp/$name.memstats.txt"
			grep -E '^(VmRSS|RssAnon|RssFile|VmHWM)' "/proc/$SERVER_PID/status" >>"$tmp/$name.memstats.txt"
			;;
		esac
	) &
	PROF_PID=$!
}

# save_profiles NAME: pprof's reports of what profile_when saved.
save_profiles() {
	local name=$1
	if [ -n "$PROF_PID" ]; then
		kill "$PROF_PID" 2>/dev/null || true
		wait "$PROF_PID" 2>/dev/null || true
		PROF_PID=
	fi
	if [ -s "$tmp/$name.cpu.pb.gz" ]; then
		{
			go tool pprof -top -nodecount 30 "$bin" "$tmp/$name.cpu.pb.gz" 2>/dev/null
			echo
			go tool pprof -top -cum -nodecount 60 "$bin" "$tmp/$name.cpu.pb.gz" 2>/dev/null | sed -n '/flat%/,$p'
		} >"$OUT/profiles/$name-cpu.txt"
	fi
	if [ -s "$tmp/$name.perf.data" ]; then
		perf script -F comm,pid,ip,sym -i "$tmp/$name.perf.data" 2>/dev/null |
			"$tmp/perfsplit" -server "$(cat "$tmp/$name.perf.pid")" >"$OUT/profiles/$name-perf.txt" ||
			log "$name: perfsplit failed"
	fi
	if [ -s "$tmp/$name.heap.pb.gz" ]; then
		{
			cat "$tmp/$name.memstats.txt"
			echo
			go tool pprof -sample_index=inuse_space -top -nodecount 30 "$bin" "$tmp/$name.heap.pb.gz" 2>/dev/null
		} >"$OUT/profiles/$name-heap.txt"
	fi
}

# bench TARGET NAME BOUND TOKENS [BENCH FLAGS...]: one run on a fresh
# server, stopped by SIGINT after BOUND seconds at the latest (the bench
# then reports what it measured so far). Other people's work on the
# machine shows as CPU time used by neither the server nor the bench; if
# it exceeds 10 % of the machine during the run, the run is repeated once
# (RETRIES), and the file says how much there was.
RETRIES=${RETRIES:-1}
EARLIER=
bench() {
	local env=("${SERVER_ENV[@]}") prof=("${PROF_ARGS[@]}") per=$PER_MESSAGE attempt
	EARLIER=
	for attempt in $(seq 0 "$RETRIES"); do
		SERVER_ENV=("${env[@]}") PROF_ARGS=("${prof[@]}") PER_MESSAGE=$per
		bench_once "$@"
		local other wall
		other=$(sed -n 's/.*"other_cpu_seconds":\([0-9.]*\).*/\1/p' "$OUT/$2.json")
		wall=$(sed -n 's/.*"bench_wall_seconds":\([0-9.]*\).*/\1/p' "$OUT/$2.json")
		if awk -v o="$other" -v w="$wall" -v n="$(nproc)" 'BEGIN {exit !(o <= 0.1 * w * n)}'; then
			break
		fi
		log "$2: other processes used ${other} s of CPU during the run"
		EARLIER="${EARLIER:+$EARLIER,}$other"
		if [ "$attempt" -lt "$RETRIES" ]; then log "$2: running it again"; fi
	done
	SERVER_ENV=() PROF_ARGS=() PER_MESSAGE=
}

bench_once() {
	local target=$1 name=$2 bound=$3 ntok=$4
	shift 4
	local tok rc=0 quiet load env_desc=
	tok=$(tokens "$ntok")
	# A repeated run must not see the files of the one before.
	rm -f "$tmp/$name".{out,err,time,cpu.pb.gz,heap.pb.gz,memstats.txt,perf.data,perf.pid,messages.csv}
	rm -f "$OUT/$name-messages.csv"
	# --messages writes into the scratch directory; the command as recorded
	# names the file it is saved as.
	local extra=() extra_desc=
	if [ -n "$PER_MESSAGE" ]; then
		extra=(--messages "$tmp/$name.messages.csv") extra_desc=" --messages $name-messages.csv"
		PER_MESSAGE=
	fi
	quiet=$(wait_quiet)
	if [ ${#SERVER_ENV[@]} -gt 0 ]; then env_desc="${SERVER_ENV[*]} "; fi
	start_server "$name"
	SERVER_ENV=()
	if [ -n "${PERF:-}" ]; then
		PROF_ARGS=('^sending (as|[0-9])' 3 perf 5)
	fi
	if [ ${#PROF_ARGS[@]} -gt 0 ]; then
		profile_when "$name" "${PROF_ARGS[@]}"
		PROF_ARGS=()
	fi
	load=$(loadavg)
	log "$name: ${env_desc}parley bench $* (machine $quiet % busy before)"
	local TIMEFORMAT='%R %U %S' b0 b1 s0 s1 d0 d1
	b0=$(task_ticks) s0=$(proc_ticks "$SERVER_PID") d0=$(db_ticks)
	{ time timeout -k 30 -s INT "$bound" "$bin" bench --targets "http://$ADDR" --tokens "$tok" --pid "$SERVER_PID" "$@" "${extra[@]}" \
		>"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>"$tmp/$name.time" || rc=$?
	b1=$(task_ticks) s1=$(proc_ticks "$SERVER_PID") d1=$(db_ticks)
	stop_server
	save_profiles "$name"
	if [ -s "$tmp/$name.messages.csv" ]; then cp "$tmp/$name.messages.csv" "$OUT/$name-messages.csv"; fi
	local result wall user sys
	result=$(grep '^{' "$tmp/$name.out" | tail -n 1 || true)
	read -r wall user sys <"$tmp/$name.time"
	{
		printf '{"target":%s,"name":%s,"commit":%s,"date":%s' "$(json_str "$target")" "$(json_str "$name")" "$(json_str "$commit")" "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
		printf ',"command":%s' "$(json_str "parley bench --targets http://127.0.0.1:PORT --tokens TOKENS($ntok) --pid PID $*$extra_desc")"
		printf ',"server_command":%s' "$(json_str "${env_desc}${SERVER_BIN_DESC:-parley} --addr 127.0.0.1:0 --debug-addr 127.0.0.1:0 --db $SERVER_DB_DESC $SERVER_FLAGS")"
		printf ',"tokens":%s,"bound_seconds":%s,"exit_code":%s' "$ntok" "$bound" "$rc"
		printf ',"loadavg_before":%s,"machine_busy_percent_before":%s' "$(json_str "$load")" "$quiet"
		printf ',"bench_wall_seconds":%s,"bench_cpu_seconds":%s' "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')"
		# Whole-run CPU time (connecting included) of the server, and of
		# everything else on the machine but the bench: other people's work.
		printf ',"server_cpu_seconds_total":%s' "$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f", (b - a) / 100}')"
		if [ -n "$SERVER_DB" ]; then
			printf ',"db_cpu_seconds":%s' "$(awk -v a="$d0" -v b="$d1" 'BEGIN {printf "%.2f", (b - a) / 100}')"
		fi
		printf ',"other_cpu_seconds":%s' "$(awk -v a="$b0" -v b="$b1" -v s0="$s0" -v s1="$s1" -v d0="$d0" -v d1="$d1" -v u="$user" -v s="$sys" \
			'BEGIN {o = (b - a - (s1 - s0) - (d1 - d0)) / 100 - u - s; printf "%.2f", (o < 0 ? 0 : o)}')"
		printf ',"earlier_attempts_other_cpu_seconds":[%s]' "$EARLIER"
		if [ -n "$result" ]; then
			printf ',"result":%s' "$result"
		else
			printf ',"error":%s' "$(json_str "$(tail -n 3 "$tmp/$name.err")")"
		fi
		printf '}\n'
	} >"$OUT/$name.json"
	grep -v '^{' "$tmp/$name.out" >"$OUT/$name.txt" || true
	sed 's/^/    /' "$OUT/$name.txt" >&2
}

# gobench TARGET NAME ARGS...: go test benchmarks, their output kept as is
# and as JSON. GOBENCH_ENV (VAR=value ...) is the environment of the next
# one only; GOBENCH_ENV_DESC how the command shows it.
GOBENCH_ENV=()
GOBENCH_ENV_DESC=
gobench() {
	local target=$1 name=$2
	shift 2
	local load quiet env=("${GOBENCH_ENV[@]}") desc=${GOBENCH_ENV_DESC:+$GOBENCH_ENV_DESC }
	GOBENCH_ENV=() GOBENCH_ENV_DESC=
	quiet=$(wait_quiet)
	load=$(loadavg)
	log "$name: ${desc}go test $* (machine $quiet % busy before)"
	(cd "$src" && env "${env[@]}" timeout -k 30 300 go test "$@") | tee "$OUT/$name.txt" >&2 || log "$name: go test failed"
	awk -v target="$target" -v name="$name" -v cmd="${desc}go test $*" -v la="$load" -v quiet="$quiet" -v commit="$commit" '
		BEGIN { printf "{\"target\":\"%s\",\"name\":\"%s\",\"commit\":\"%s\",\"command\":\"%s\",\"loadavg_before\":\"%s\",\"machine_busy_percent_before\":%s,\"benchmarks\":[", target, name, commit, cmd, la, quiet; n = 0 }
		/^pkg: / { pkg = $2 }
		/^Benchmark/ {
			printf "%s{\"pkg\":\"%s\",\"name\":\"%s\",\"n\":%s,\"metrics\":{", (n++ ? "," : ""), pkg, $1, $2
			m = 0
			for (i = 3; i + 1 <= NF; i += 2) printf "%s\"%s\":%s", (m++ ? "," : ""), $(i + 1), $i
			printf "}}"
		}
		END { print "]}" }' "$OUT/$name.txt" >"$OUT/$name.json"
}

# repeat TARGET NAME ARGS...: bench NAME, then NAME-run2 and on up to
# REPEAT runs in all, first removing the NAME-runN files of an earlier
# invocation; what was asked for the next run (a profile, per
# message figures, the server's environment) goes to the first alone.
repeat() {
	local target=$1 name=$2 i
	shift 2
	# Runs of an earlier invocation with a larger REPEAT are not this one's.
	rm -f "$OUT/$name"-run[0-9]*.json "$OUT/$name"-run[0-9]*.txt
	bench "$target" "$name" "$@"
	for ((i = 2; i <= REPEAT; i++)); do
		bench "$target" "$name-run$i" "$@"
	done
}

# Target 1: one room of 1,000, 10 senders as fast as they can: with the
# bench's default of 8 unanswered sends per sender, and with 1.
if wants 1; then
	profile '^sending (as|[0-9])' 3 cpu 5
	bench 1 target1 90 1000 --conns 1000 --rooms 1 --senders 10 --rate 0 --duration 10s
	bench 1 target1-inflight1 90 1000 --conns 1000 --rooms 1 --senders 10 --rate 0 --inflight 1 --duration 10s
fi
# Target 2: 1,000 connections in 10 rooms, 100 messages/s over 10 senders;
# and the same in 10 private groups, which the tool creates first.
if wants 2; then
	bench 2 target2 90 1000 --conns 1000 --rooms 10 --senders 1 --rate 100 --duration 10s
	bench 2 target2-groups 120 1000 --conns 1000 --rooms 10 --groups --senders 1 --rate 100 --duration 10s
	# Context: the groups where every member moves its read position as the
	# web app does, each move a receipt to the group.
	bench 2 target2-groups-read 120 1000 --conns 1000 --rooms 10 --groups --senders 1 --rate 100 --duration 10s --read
fi
# Target 3: light load, 100 connections in one room, 10 messages/s.
# Context: the same load in 10 rooms of 10, to tell the store and the
# fan-out apart.
if wants 3; then
	repeat 3 target3 60 100 --conns 100 --rooms 1 --senders 10 --rate 10 --duration 20s
	bench 3 target3-rooms10 60 100 --conns 100 --rooms 10 --senders 1 --rate 10 --duration 20s
fi
# Target 4: one room of 10,000 members, each connected once, 10
# messages/s. The members joined before (the members database): 10,000
# users entering during the run add 10,000 join messages, each to everyone
# there, which target4-joining measures apart.
if wants 4; then
	TEMPLATE=$tmp/members.db TOKENS_ALL=$tmp/tokens.members
	profile '^sending (as|[0-9])' 3 cpu 5
	per_message
	bench 4 target4 180 10000 --conns 10000 --rooms 1 --senders 10 --rate 10 --duration 10s
	# Context: the same room where every client moves its read position as
	# the web app does, about once a second.
	bench 4 target4-read 180 10000 --conns 10000 --rooms 1 --senders 10 --rate 10 --duration 10s --read
	TEMPLATE=$tmp/template.db TOKENS_ALL=$tmp/tokens.all
	profile '^connecting' 15 cpu 8
	bench 4 target4-joining 60 10000 --conns 10000 --rooms 1 --senders 10 --rate 10 --duration 10s
fi
# Target 5: 19,000 idle signed-in connections (the per-process open-file
# limit is 20,000, and the bench holds one file per connection too), in
# rooms of 10 so that joining costs the same for each.
if wants 5; then
	profile '^holding' 0 heap
	bench 5 target5 180 19000 --conns 19000 --rooms 1900 --idle --duration 5s --ramp 2000
	# Context: how much of that is garbage the collector has yet to reuse.
	SERVER_ENV=(GOGC=25)
	profile '^holding' 0 heap
	bench 5 target5-gogc25 180 19000 --conns 19000 --rooms 1900 --idle --duration 5s --ramp 2000
fi
# Target 6: stored and acknowledged sends, 200 concurrent senders over 100
# rooms: the store alone (Go benchmark), then end to end over WebSocket.
if wants 6; then
	gobench 6 target6 -run '^$' -bench 'AppendParallel$' -benchtime 5s -count 3 ./internal/sqlite/
	profile '^sending (as|[0-9])' 3 cpu 5
	bench 6 target6-e2e 90 200 --conns 200 --rooms 100 --senders 2 --rate 0 --duration 10s
	# The same two with synchronous=FULL, where every commit waits for an
	# fsync of the WAL (--sqlite-synchronous full).
	gobench 6 target6-syncfull -run '^$' -bench 'AppendParallelSyncFull$' -benchtime 5s -count 3 ./internal/sqlite/
	saved_flags=$SERVER_FLAGS SERVER_FLAGS="$SERVER_FLAGS --sqlite-synchronous full"
	bench 6 target6-e2e-syncfull 90 200 --conns 200 --rooms 100 --senders 2 --rate 0 --duration 10s
	SERVER_FLAGS=$saved_flags
	# The same two with the cgo SQLite driver (github.com/mattn/go-sqlite3).
	gobench 6 target6-cgo -tags sqlite_cgo -run '^$' -bench 'AppendParallel$' -benchtime 5s -count 3 ./internal/sqlite/
	SERVER_BIN=$bin_cgo SERVER_BIN_DESC="parley(-tags sqlite_cgo)"
	bench 6 target6-e2e-cgo 90 200 --conns 200 --rooms 100 --senders 2 --rate 0 --duration 10s
	SERVER_BIN= SERVER_BIN_DESC=
	# The same against PostgreSQL: the store's Go benchmark (each run in a
	# schema of its own that the test drops), then a server on a fresh
	# schema of PG_URL holding 200 benchmark sessions.
	GOBENCH_ENV=("PARLEY_TEST_POSTGRES=$PG_URL") GOBENCH_ENV_DESC="PARLEY_TEST_POSTGRES=$PG_URL"
	gobench 6 target6-postgres -run '^$' -bench 'AppendParallel$' -benchtime 5s -count 3 ./internal/postgres/
	PG_SCHEMA=parley_bench_$$
	case $PG_URL in *\?*) pg_db="$PG_URL&search_path=$PG_SCHEMA" ;; *) pg_db="$PG_URL?search_path=$PG_SCHEMA" ;; esac
	if psql -q -v ON_ERROR_STOP=1 "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE; CREATE SCHEMA $PG_SCHEMA" >"$tmp/pg.out" 2>&1 &&
		"$bin" admin sessions --db "$pg_db" --count 200 >"$tmp/tokens.pg" 2>>"$tmp/pg.out"; then
		SERVER_DB=$pg_db SERVER_DB_DESC="${PG_URL}&search_path=FRESH_SCHEMA" TOKENS_ALL=$tmp/tokens.pg
		profile '^sending (as|[0-9])' 3 cpu 5
		bench 6 target6-e2e-postgres 90 200 --conns 200 --rooms 100 --senders 2 --rate 0 --duration 10s
		SERVER_DB= SERVER_DB_DESC=FRESH.db TOKENS_ALL=$tmp/tokens.all
	else
		log "target6-e2e-postgres: could not prepare schema $PG_SCHEMA: $(tail -n 1 "$tmp/pg.out")"
		printf '{"target":"6","name":"target6-e2e-postgres","command":%s,"exit_code":1,"error":%s}\n' \
			"$(json_str "psql; parley admin sessions --db $PG_URL&search_path=FRESH_SCHEMA --count 200")" \
			"$(json_str "$(tail -n 1 "$tmp/pg.out")")" >"$OUT/target6-e2e-postgres.json"
	fi
	psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
	PG_SCHEMA=
fi
# Target 7: 5,000 long-polling clients (GET /api/poll with a cursor, sends
# by POST), 100 messages/s: 50 rooms of 100, one sender each, as target 8's
# 5k run does over WebSocket.
if wants 7; then
	profile '^sending (as|[0-9])' 3 cpu 5
	repeat 7 target7 150 5000 --transport longpoll --conns 5000 --rooms 50 --senders 1 --rate 100 --duration 10s
fi
# Target 8: how cost grows, at 10,000 deliveries/s offered. Connections:
# 1k, 5k and 19k in rooms of 100, 100 messages/s in all. Room size: 10, 100
# (the 1k run), 1,000 and 10,000 members (10,000 connections of 1,000
# users, as in target 4), one sender per room.
if wants 8; then
	bench 8 target8-conns1k 90 1000 --conns 1000 --rooms 10 --senders 1 --rate 100 --duration 10s
	bench 8 target8-conns5k 120 5000 --conns 5000 --rooms 50 --senders 1 --rate 100 --duration 10s
	bench 8 target8-conns19k 180 19000 --conns 19000 --rooms 190 --senders 1 --rate 100 --duration 10s --ramp 2000
	bench 8 target8-room10 90 1000 --conns 1000 --rooms 100 --senders 1 --rate 1000 --duration 10s
	bench 8 target8-room1000 90 1000 --conns 1000 --rooms 1 --senders 1 --rate 10 --duration 10s
	bench 8 target8-room10000 180 1000 --conns 10000 --rooms 1 --senders 1 --rate 1 --duration 10s
fi
if wants go; then
	gobench go gobench -run '^$' -bench . -benchmem ./internal/hub/ ./internal/sqlite/ ./internal/chat/ ./internal/web/ ./internal/bench/ ./internal/bench/floor/
fi
log "done; results in $OUT (go run ./scripts/benchreport)"
