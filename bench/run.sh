#!/usr/bin/env bash
# bench/run.sh: Switchyard against nginx, HAProxy and Caddy on loopback, same backend, same scenarios.
# See bench/README.md for what is measured and how to read the table.
#
#   bench/run.sh [--quick] [--https] [--pinned] [--lane] [--rounds N] [--duration SECONDS] [--idle N]
#                [--stream BYTES] [--busy N] [--busy-duration SECONDS] [--out FILE] [--note TEXT]
#                [--gateway-env VAR=VALUE]...
#
# Defaults: 3 rounds of 5 s runs, 5000 idle connections, a 1 GiB stream, 2000 busy connections for 20 s.
# --quick: 1 round of 1 s runs, 500 idle and 500 busy connections (3 s), a 64 MiB stream (a smoke test; its
# results file ends in -quick.md). --https: only the HTTPS scenario (Switchyard, nginx, Caddy; HTTP/2 by
# h2load, HTTP/1.1 by wrk; results in *-https.md). --pinned: fronts and backend on core 0, wrk on core 1,
# nginx with 1 worker, Go with GOMAXPROCS=1; Switchyard (and lane), nginx and nginx-fwd only (*-pinned.md).
# --lane adds a front "lane": Switchyard with GATEWAY_FAST_LANE=true, measured side by side with the others,
# "switchyard" then running with GATEWAY_FAST_LANE=false (without --lane it runs the defaults: the lane on).
# --busy 0 skips the busy-connection and reload scenarios.
# --gateway-env adds a setting to Switchyard's (e.g. GATEWAY_FAST_LANE=true; repeatable).
# It installs nothing: when a tool is missing it prints the apt-get line to run and exits 2.
set -euo pipefail

rounds=3 duration=5 idle=5000 stream=$((1 << 30)) busy=2000 busy_duration=20 report="" note="" quick="" https=""
pinned="" lane=""
extra_env=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 rounds=1 duration=1 idle=500 stream=$((64 << 20)) busy=500 busy_duration=3 ;;
    --https) https=1 ;;
    --pinned) pinned=1 ;;
    --busy) busy=$2; shift ;;
    --busy-duration) busy_duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --duration) duration=$2; shift ;;
    --idle) idle=$2; shift ;;
    --stream) stream=$2; shift ;;
    --out) report=$2; shift ;;
    --note) note=$2; shift ;;
    --gateway-env) extra_env+=("$2"); shift ;;
    --lane) lane=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done
for v in rounds duration idle stream busy_duration; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench: --${v/_/-} wants a positive integer, not ${!v}" >&2; exit 2; }
done
[[ $busy =~ ^(0|[1-9][0-9]*)$ ]] || { echo "bench: --busy wants 0 or a positive integer, not $busy" >&2; exit 2; }
[ -z "$pinned" ] || [ -z "$https" ] || { echo "bench: --pinned and --https do not go together (the HTTPS run uses every core)" >&2; exit 2; }
[ -z "$https" ] || busy=0 # the HTTPS run has no busy-connection scenario

cd "$(dirname "$0")/.."
root=$PWD

# --- prerequisites: never install anything, say what is missing -------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
[ -n "$https" ] || [ -n "$pinned" ] || command -v haproxy >/dev/null || missing+=(haproxy)
[ -n "$pinned" ] || command -v caddy >/dev/null || missing+=(caddy)
[ -z "$pinned" ] || command -v taskset >/dev/null || missing+=(util-linux)
command -v wrk >/dev/null || missing+=(wrk)
if [ -n "$https" ]; then
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v openssl >/dev/null || missing+=(openssl)
fi
for tool in curl pgrep ss; do
  command -v "$tool" >/dev/null || case $tool in curl) missing+=(curl) ;; pgrep) missing+=(procps) ;; ss) missing+=(iproute2) ;; esac
done
nogo=""
command -v go >/dev/null || nogo=1
if [ ${#missing[@]} -gt 0 ] || [ -n "$nogo" ]; then
  echo "bench: missing tools; this script installs nothing. Install them with:" >&2
  [ ${#missing[@]} -gt 0 ] && echo "  apt-get install -y ${missing[*]}" >&2
  [ -n "$nogo" ] && echo "  Go $(sed -n 's/^go //p' go.mod) or newer from https://go.dev/dl/ (go on PATH)" >&2
  exit 2
fi

# Enough descriptors for the idle and busy connections. Idle: the client and the front both hold one per
# connection. Busy: the front holds one per client connection and, nginx at least, up to one per request in
# flight towards the backend (nginx's worker_connections is set to what is needed). Every process here gets
# the soft limit raised to the hard one.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
need=$((2 * idle + 1000)) need_why="--idle $idle"
[ $((2 * busy + 1000)) -le "$need" ] || need=$((2 * busy + 1000)) need_why="--busy $busy"
if [ "$hard" -lt "$need" ]; then
  echo "bench: the hard descriptor limit (ulimit -Hn: $hard) is below the $need that $need_why needs;" >&2
  echo "  raise it (as root: ulimit -Hn $need in the shell that runs the bench, or LimitNOFILE= / limits.conf)" >&2
  echo "  or lower $need_why" >&2
  exit 2
fi
ulimit -n "$hard"

# Where processes run. All cores: anywhere, every front with as many workers as cores. --pinned: the fronts
# and the backends on the first core this process may use (Go with GOMAXPROCS=1, nginx with one worker),
# wrk, curl, idleconns and this script itself (its sampling loops) on the second.
on_front=(env) on_load=(env) workers=auto
if [ -n "$pinned" ]; then
  cpus=()
  IFS=, read -ra parts < <(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then for ((c = ${part%-*}; c <= ${part#*-}; c++)); do cpus+=("$c"); done; else cpus+=("$part"); fi
  done
  if [ ${#cpus[@]} -lt 2 ]; then
    echo "bench: --pinned needs 2 cores (fronts on one, wrk on the other); this process may use ${cpus[*]:-none}" >&2
    exit 2
  fi
  front_cpu=${cpus[0]} load_cpu=${cpus[1]}
  on_front=(taskset -c "$front_cpu" env GOMAXPROCS=1) on_load=(taskset -c "$load_cpu") workers=1
fi

# The fronts' own settings come from this script only.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(GATEWAY_|OTEL_|GOMAXPROCS$|GOGC$|GOMEMLIMIT$|GODEBUG$)' || true)

cores=$(nproc)
tmp=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
declare -A pid_of=()
cleanup() {
  local p
  for p in "${pid_of[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pid_of[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# free_port VAR: a port below the ephemeral range that nothing listens on or uses, not handed out before.
taken=" "
free_port() {
  local p
  for _ in $(seq 1000); do
    p=$((20000 + RANDOM % 12000))
    case "$taken" in *" $p "*) continue ;; esac
    [ -z "$(ss -Htan "( sport = :$p or dport = :$p )")" ] || continue
    taken+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  log "bench: no free port found"; exit 1
}

wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  log "bench: nothing listens on :$1 (logs in $tmp)"; tail -n 20 "$tmp"/*.log >&2 || true; exit 1
}

# start NAME PORT COMMAND...: run COMMAND in the background (its output in $tmp/NAME.log), wait for PORT.
start() {
  local name=$1 port=$2
  shift 2
  "$@" >"$tmp/$name.log" 2>&1 &
  pid_of[$name]=$!
  wait_port "$port"
}
stop() {
  local p=${pid_of[$1]:-}
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  unset "pid_of[$1]"
}

# kib FIELD NAME...: the sum of /proc/PID/status FIELD (VmRSS, VmHWM) over the named processes and their
# descendants (nginx's master and workers), in KiB.
tree() { local c; echo "$1"; for c in $(pgrep -P "$1" || true); do tree "$c"; done; }
kib() {
  local field=$1 n p total=0 v
  shift
  for n in "$@"; do
    for p in $(tree "${pid_of[$n]}"); do
      v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}

# --- report helpers ---------------------------------------------------------------------------------------
# us VALUE: a wrk or h2load latency (950.00us, 1.20ms, 2.00s) in microseconds.
us() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
  m = (u == "us") ? 1 : (u == "ms") ? 1000 : (u == "s") ? 1000000 : (u == "m") ? 60000000 : 0;
  if (m == 0) { print "nan" } else { printf "%.1f", n * m } }'; }
# med SCEN FRONT COLUMN: the median over rounds of a results column (4 req/s, 5 p50, 6 p99); sum for 7.
med() {
  awk -v s="$1" -v f="$2" -v c="$3" '$1 == s && $2 == f { v[n++] = $c; t += $c }
    END { if (n == 0) { print "n/a"; exit } if (c == 7) { print t; exit }
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { x = v[i]; v[i] = v[j]; v[j] = x }
      m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2; printf "%.1f", m }' "$results"
}
# nginx_common [DIR] prints what every nginx configuration shares: workers, limits, temp paths (under DIR,
# default $tmp/nginx, one per nginx instance), the keep-alive
# upstream pool to the backend; the caller's heredoc adds the servers and closes the http block.
nginx_common() {
  local dir=${1:-$tmp/nginx}
  cat <<CONF
worker_processes $workers;
worker_rlimit_nofile $hard;
pid $dir/nginx.pid;
error_log $dir/error.log error;
events { worker_connections $need; }
http {
  access_log off;
  keepalive_timeout 120s;
  keepalive_requests 1000000000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_max_temp_file_size 0;
  upstream backend { server 127.0.0.1:$be; keepalive 256; keepalive_requests 1000000000; keepalive_timeout 120s; }
CONF
}
calc() { awk "BEGIN { $1 }" </dev/null; }
ratio() { calc "a = \"$1\"; b = \"$2\"; if (a == \"n/a\" || b == \"n/a\" || b + 0 == 0) print \"n/a\"; else printf \"%.2f\", a / b"; }
mib() { calc "printf \"%.1f\", $1 / 1024"; }
if [ $((stream % (1 << 30))) = 0 ]; then stream_size="$((stream >> 30)) GiB"; else stream_size="$(mib "$((stream / 1024))") MiB"; fi
n0() { calc "printf \"%.0f\", $1"; }
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
tag=$(echo "${cpu:-cpu}" | tr 'A-Z' 'a-z' | sed -E 's/\((r|tm)\)//g; s/ (cpu|processor).*//; s/[^a-z0-9]+/-/g; s/^-|-$//g' | cut -c1-24)
tag="$tag-${cores}c"

# --- build and configure --------------------------------------------------------------------------------
log "bench: building the backend, idleconns and the gateway"
go build -o "$tmp/backend" ./bench/backend
go build -o "$tmp/idleconns" ./bench/idleconns
go build -trimpath -o "$tmp/gateway" ./cmd/gateway
commit=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
# --pinned: this script (its sampling loops, curl, the report) joins wrk on the load generator's core.
[ -z "$pinned" ] || taskset -pc "$load_cpu" $$ >/dev/null

# --- HTTPS (--https): Switchyard, nginx and Caddy terminating TLS with one certificate, same backend -------
if [ -n "$https" ]; then
  # One self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost, made here and shared by every front.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
    >"$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log" >&2; exit 1; }
  free_port be; free_port sy; free_port ngx; free_port cad
  gw_tls=(env GATEWAY_ADMIN_ADDR= GATEWAY_LOG_LEVEL=error GATEWAY_IDLE_TIMEOUT=120s GATEWAY_HTTP_ADDR=
    GATEWAY_ADDR="127.0.0.1:$sy" GATEWAY_TLS_CERT="$tmp/cert.pem" GATEWAY_TLS_KEY="$tmp/key.pem"
    GATEWAY_PRIMARY="http://127.0.0.1:$be")
  for v in $("$tmp/gateway" help 2>&1 | grep -oE 'GATEWAY_MAX_CONNS[A-Z_]*' | sort -u || true); do
    gw_tls+=("$v=100000")
  done
  "${gw_tls[@]}" "$tmp/gateway" check >"$tmp/gateway-check.log" 2>&1 || { cat "$tmp/gateway-check.log" >&2; exit 1; }

  # nginx: as in the plain-HTTP run, plus `listen ... ssl http2` with the certificate and TLS 1.2 and 1.3 (as
  # Go and Caddy offer; nginx before 1.23.4 leaves 1.3 out by default); otherwise nginx's defaults (session
  # cache off, ciphers), HTTP/2 at its default 128 streams per connection.
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx.conf" <<CONF
$(nginx_common)
  server {
    listen 127.0.0.1:$ngx ssl http2;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; }
  }
}
CONF
  # Caddy: the same certificate by `tls cert key` (no automatic HTTPS, no HTTP/3 listener), HTTP/1.1 and 2.
  cat >"$tmp/Caddyfile" <<CONF
{
  admin off
  auto_https off
  servers {
    protocols h1 h2
    timeouts {
      idle 120s
    }
  }
}
https://:$cad {
  bind 127.0.0.1
  tls $tmp/cert.pem $tmp/key.pem
  reverse_proxy 127.0.0.1:$be {
    transport http {
      keepalive 120s
      keepalive_idle_conns 256
      keepalive_idle_conns_per_host 256
    }
  }
}
CONF
  mkdir -p "$tmp/caddy-home"
  fronts=(switchyard nginx caddy)
  declare -A port=([switchyard]=$sy [nginx]=$ngx [caddy]=$cad)
  start backend "$be" "$tmp/backend" -addr "127.0.0.1:$be"
  start switchyard "$sy" "${gw_tls[@]}" "$tmp/gateway" serve
  start nginx "$ngx" nginx -p "$tmp/nginx" -c "$tmp/nginx.conf" -g 'daemon off;'
  start caddy "$cad" env HOME="$tmp/caddy-home" XDG_DATA_HOME="$tmp/caddy-home" XDG_CONFIG_HOME="$tmp/caddy-home" \
    caddy run --config "$tmp/Caddyfile" --adapter caddyfile

  # Each front must answer /small over TLS, by HTTP/2 when offered (ALPN) and by HTTP/1.1 when asked.
  declare -A tls_info=()
  for f in "${fronts[@]}"; do
    for want in "2 200 64:--http2" "1.1 200 64:--http1.1"; do
      got=$(curl -sS -k "${want#*:}" -o /dev/null -w '%{http_version} %{http_code} %{size_download}' \
        "https://127.0.0.1:${port[$f]}/small" 2>&1 || true)
      [ "$got" = "${want%%:*}" ] || { log "bench: $f over TLS ${want#*:}: got \"$got\", want \"${want%%:*}\""; exit 1; }
    done
    h2load -n 1 -c 1 "https://127.0.0.1:${port[$f]}/small" >"$tmp/h2load-check.out" 2>&1 || true
    tls_info[$f]=$(awk '/^TLS Protocol:/ { p = $3 } /^Cipher:/ { c = $2 } /^Server Temp Key:/ { k = $4 }
      /^Application protocol:/ { a = $3 } END { printf "%s %s %s %s", p, c, k, a }' "$tmp/h2load-check.out")
    log "bench: $f over TLS: ${tls_info[$f]}"
  done

  results=$tmp/results.txt
  : >"$results"
  # measure_tls SCENARIO FRONT ROUND: one run; appends "scenario front round req/s lat1 lat2 errors kinds" where
  # lat1, lat2 are p50, p99 for wrk (h1tls64) and mean, max for h2load (h2tls64), in µs.
  measure_tls() {
    local scen=$1 front=$2 round=$3 out rps l1 l2 bad kinds url="https://127.0.0.1:${port[$2]}/small"
    case $scen in
      h2tls64)
        # 64 streams in flight: 8 connections (so nginx's workers share them) of 8 concurrent streams each.
        out=$(h2load -t1 -c8 -m8 -D "$duration" "$url" 2>&1)
        rps=$(awk '/^finished in/ { gsub(/,/, ""); print $4 }' <<<"$out")
        read -r l1 l2 < <(awk '/^time for request:/ { print $6, $5 }' <<<"$out")
        l1=$(us "$l1") l2=$(us "$l2")
        read -r bad kinds < <(awk '/^requests:/ { gsub(/,/, ""); f = $10; e = $12; t = $14 }
          /^status codes:/ { gsub(/,/, ""); x = $5 + $7 + $9 }
          END { printf "%d non2xx=%d,failed=%d,errored=%d,timeout=%d\n", x + f, x, f, e, t }' <<<"$out") ;;
      h1tls64)
        out=$(wrk -t2 -c64 -d"${duration}s" --latency "$url")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
        l1=$(us "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
        l2=$(us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
        read -r bad kinds < <(awk '/^ *Non-2xx or 3xx responses:/ { s = $NF; n += s }
          /^ *Socket errors:/ { gsub(/,/, ""); c = $4; r = $6; w = $8; t = $10; n += c + r + w + t }
          END { printf "%d non2xx=%d,connect=%d,read=%d,write=%d,timeout=%d\n", n, s, c, r, w, t }' <<<"$out") ;;
    esac
    echo "$scen $front $round ${rps:-0} $l1 $l2 $bad $kinds" >>"$results"
    log "  $scen round $((round + 1)) $front: ${rps:-0} req/s, latency $l1 / $l2 us, errors $bad ($kinds)"
  }

  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  log "bench: HTTPS, $rounds round(s) of ${duration}s runs; fronts: ${fronts[*]}; $cores cores"
  for f in "${fronts[@]}"; do # warm-up: pools filled, Go heaps sized, session and handshake code paged in
    h2load -t1 -c8 -m8 -D 1 "https://127.0.0.1:${port[$f]}/small" >/dev/null 2>&1
    wrk -t2 -c64 -d1s "https://127.0.0.1:${port[$f]}/small" >/dev/null
  done
  for scen in h2tls64 h1tls64; do
    for ((r = 0; r < rounds; r++)); do
      for ((i = 0; i < ${#fronts[@]}; i++)); do
        measure_tls "$scen" "${fronts[$(((i + r) % ${#fronts[@]}))]}" "$r"
      done
    done
  done
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)

  [ -n "$report" ] || report="bench/results/$(date -u +%F)-https${quick:+-quick}.md"
  mkdir -p "$(dirname "$report")"
  {
    echo "# Switchyard HTTPS bench, $(date -u '+%F %H:%M UTC')"
    echo
    echo "h2load, wrk, the fronts and the backend all run on the same $cores cores, so absolute numbers move with the machine and whatever else runs on it; compare the ratios within one run.${note:+ $note}"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | ${cpu:-unknown}, $cores cores |"
    echo "| kernel | $(uname -sr) |"
    echo "| Go | $(go version | awk '{ print $3 }') |"
    echo "| gateway commit | \`$commit\` |"
    echo "| nginx | $(nginx -v 2>&1 | sed 's/.*version: //') |"
    echo "| Caddy | $(caddy version | awk '{ print $1 }') |"
    echo "| h2load | $(h2load --version | awk '{ print $2 }') |"
    echo "| wrk | $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }') |"
    echo "| OpenSSL | $(openssl version | awk '{ print $2 }') |"
    echo "| certificate | self-signed ECDSA P-256 made by the run, the same files for every front |"
    for f in "${fronts[@]}"; do echo "| $f handshake (h2load) | ${tls_info[$f]} |"; done
    echo "| runs | $rounds round(s) of ${duration} s per front and scenario, fronts in a rotated order each round; medians shown |"
    echo "| workers | every front may use all $cores cores: Switchyard and Caddy GOMAXPROCS=$cores, nginx \`worker_processes auto\` ($cores); the backend is Go with GOMAXPROCS=$cores, plain HTTP |"
    echo "| load average (1, 5, 15 min) | $load_start before the runs, $load_end after them |"
    echo "| upstream | plain HTTP/1.1, keep-alive pool of 256 idle connections everywhere, access logs off |"
    echo
    # tls_rows SCENARIO: one row per front (req/s, ratio to nginx, the two latency columns, errors).
    tls_rows() {
      local nr r f
      nr=$(med "$1" nginx 4)
      for f in "${fronts[@]}"; do
        r=$(med "$1" "$f" 4)
        echo "| $f | $(n0 "$r") | $(ratio "$r" "$nr") | $(med "$1" "$f" 5) | $(med "$1" "$f" 6) | $(med "$1" "$f" 7) |"
      done
    }
    echo "## 1. Small GET over HTTP/2 with TLS, 64 streams (h2load)"
    echo
    echo "\`h2load -t1 -c8 -m8 -D $duration\`: 8 connections with 8 concurrent streams each. h2load gives no"
    echo "percentiles; mean and max are its \"time for request\"."
    echo
    echo "| front | req/s | ÷ nginx | mean µs | max µs | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    tls_rows h2tls64
    echo
    echo "## 2. Small GET over HTTP/1.1 with TLS, 64 connections (wrk)"
    echo
    echo "\`wrk -t2 -c64 -d${duration}s --latency\`."
    echo
    echo "| front | req/s | ÷ nginx | p50 µs | p99 µs | errors |"
    echo "|---|---:|---:|---:|---:|---:|"
    tls_rows h1tls64
    echo
    echo "## Target (issue 16)"
    echo
    sg=$(med h2tls64 switchyard 4) ng=$(med h2tls64 nginx 4)
    if [ "$(calc "print ($sg >= $ng) ? 1 : 0")" = 1 ]; then m=met; else m="**not met**"; fi
    echo "- HTTP/2 with TLS at 64 streams >= 1.0 x nginx's req/s: $m ($(n0 "$sg") vs $(n0 "$ng") req/s, $(ratio "$sg" "$ng") x)"
    echo
    echo "Raw runs (scenario, front, round from 0, req/s, p50 or mean µs, p99 or max µs, errors, their kinds):"
    echo
    echo '```'
    cat "$results"
    echo '```'
  } >"$report"
  cat "$report"
  log "bench: results in $report"
  exit 0
fi

free_port be; free_port be404; free_port direct; free_port directf
free_port sy; free_port syc; free_port syl; free_port sylc; free_port ngx; free_port ngxc; free_port ngxf; free_port hap; free_port hapc; free_port cad; free_port cadc

# Switchyard: everything by GATEWAY_* variables; admin listener off, errors-only log (no access lines).
gw_env=(GATEWAY_ADMIN_ADDR= GATEWAY_LOG_LEVEL=error GATEWAY_IDLE_TIMEOUT=120s ${extra_env[@]+"${extra_env[@]}"})
# Connection limits, when this gateway has them: far above what the bench opens.
for v in $("$tmp/gateway" help 2>&1 | grep -oE 'GATEWAY_MAX_CONNS[A-Z_]*' | sort -u || true); do
  gw_env+=("$v=100000")
done
# The lane is on by default: with --lane, "switchyard" is the gateway with it off and "lane" with it on.
main_lane=()
if [ -n "$lane" ]; then main_lane=(GATEWAY_FAST_LANE=false); fi
gw_main=(env "${gw_env[@]}" ${main_lane[@]+"${main_lane[@]}"} GATEWAY_ADDR="127.0.0.1:$sy" GATEWAY_PRIMARY="http://127.0.0.1:$be")
gw_cascade=(env "${gw_env[@]}" ${main_lane[@]+"${main_lane[@]}"} GATEWAY_ADDR="127.0.0.1:$syc" GATEWAY_PRIMARY="http://127.0.0.1:$be404"
  GATEWAY_DELEGATES="http://127.0.0.1:$be")
# --lane: the same two gateways with the fast lane on (the cascade is never the lane's: it hands it all off).
gw_lane=(env "${gw_env[@]}" GATEWAY_FAST_LANE=true GATEWAY_ADDR="127.0.0.1:$syl" GATEWAY_PRIMARY="http://127.0.0.1:$be")
gw_lane_cascade=(env "${gw_env[@]}" GATEWAY_FAST_LANE=true GATEWAY_ADDR="127.0.0.1:$sylc"
  GATEWAY_PRIMARY="http://127.0.0.1:$be404" GATEWAY_DELEGATES="http://127.0.0.1:$be")
"${gw_main[@]}" "$tmp/gateway" check >"$tmp/gateway-check.log" 2>&1 || { cat "$tmp/gateway-check.log" >&2; exit 1; }
"${gw_cascade[@]}" "$tmp/gateway" check >"$tmp/gateway-check.log" 2>&1 || { cat "$tmp/gateway-check.log" >&2; exit 1; }

# nginx: workers = cores, keep-alive upstream pool of 256, no access log, no request limit per connection,
# no response spooling to temp files (proxy_max_temp_file_size 0), the 404 fallback idiom for the cascade.
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
$(nginx_common)
  upstream missing { server 127.0.0.1:$be404; keepalive 256; keepalive_requests 1000000000; keepalive_timeout 120s; }
  server {
    listen 127.0.0.1:$ngx;
    location / { proxy_pass http://backend; }
  }
  server {
    listen 127.0.0.1:$ngxc;
    location / { proxy_pass http://missing; proxy_intercept_errors on; error_page 404 = @fallback; }
    location @fallback { proxy_pass http://backend; }
  }
}
CONF

# nginx-fwd: the same nginx sending the app the request fields Switchyard sends it by default (the client's
# Host, X-Request-Id, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto), where nginx's defaults send
# Host: backend and nothing else. Each field is work for the app (its parser, its header map): with it
# the comparison is like for like. Throughput and latency only; no cascade, memory or busy runs.
mkdir -p "$tmp/nginx-fwd"
cat >"$tmp/nginx-fwd.conf" <<CONF
$(nginx_common "$tmp/nginx-fwd")
  server {
    listen 127.0.0.1:$ngxf;
    location / {
      proxy_pass http://backend;
      proxy_set_header Connection \"\"; # (a location's proxy_set_header replaces the http block's: keep-alive)
      proxy_set_header Host \$http_host;
      proxy_set_header X-Request-Id \$request_id;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
CONF

# HAProxy: threads = cores, idle server connections shared by all clients (http-reuse always, pool of 256),
# no log lines; the cascade is an L7 retry on 404 redispatched to the second server.
cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread $cores
  maxconn $((idle + 1000))
defaults
  mode http
  maxconn $((idle + 1000))
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-request 10s
  timeout http-keep-alive 120s
  http-reuse always
frontend main
  bind 127.0.0.1:$hap
  default_backend app
frontend cascade
  bind 127.0.0.1:$hapc
  default_backend cascade
backend app
  server app 127.0.0.1:$be pool-max-conn 256
backend cascade
  balance first
  retries 1
  retry-on 404
  option redispatch 1
  server primary 127.0.0.1:$be404 pool-max-conn 256
  server delegate 127.0.0.1:$be pool-max-conn 256
CONF

# Caddy: Go, so GOMAXPROCS = cores like the gateway; admin API off, no access log (no log directive),
# idle pool of 256, the cascade by handle_response on status 404.
caddy_transport="transport http {
      keepalive 120s
      keepalive_idle_conns 256
      keepalive_idle_conns_per_host 256
    }"
cat >"$tmp/Caddyfile" <<CONF
{
  admin off
  auto_https off
  servers {
    timeouts {
      idle 120s
    }
  }
}
http://:$cad {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$be {
    $caddy_transport
  }
}
http://:$cadc {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:$be404 {
    $caddy_transport
    @notfound status 404
    handle_response @notfound {
      reverse_proxy 127.0.0.1:$be {
        $caddy_transport
      }
    }
  }
}
CONF
mkdir -p "$tmp/caddy-home"

# --pinned compares Switchyard with nginx only (and the backend alone, direct): the issue's split-core setup.
# --lane puts Switchyard with the fast lane on right after Switchyard.
# nginx-fwd (nginx sending the same fields as Switchyard) and direct-fwd (wrk sending them straight to the
# backend: what the fields cost the app itself, whatever front sends them) are left out of the memory runs.
fronts=(direct direct-fwd switchyard nginx nginx-fwd haproxy caddy)
if [ -n "$pinned" ]; then fronts=(direct direct-fwd switchyard nginx nginx-fwd); fi
if [ -n "$lane" ]; then fronts=("${fronts[@]:0:3}" lane "${fronts[@]:3}"); fi
mem_fronts=()
for f in "${fronts[@]}"; do [ "$f" = nginx-fwd ] || [ "$f" = direct-fwd ] || mem_fronts+=("$f"); done
declare -A port=([direct]=$direct [direct-fwd]=$directf [switchyard]=$sy [lane]=$syl [nginx]=$ngx [nginx-fwd]=$ngxf [haproxy]=$hap [caddy]=$cad)
declare -A cport=([direct]="" [direct-fwd]="" [switchyard]=$syc [lane]=$sylc [nginx]=$ngxc [nginx-fwd]="" [haproxy]=$hapc [caddy]=$cadc)
# fwd_fields: the request fields Switchyard adds by default (its own request id's length), as wrk sends them
# to direct-fwd; the Host is the client's, as wrk's own.
fwd_fields=(-H "X-Request-Id: 0123456789abcdef01234567" -H "X-Forwarded-For: 127.0.0.1"
  -H "X-Forwarded-Host: 127.0.0.1:$directf" -H "X-Forwarded-Proto: http")

# start_front NAME / stop_front NAME: a fresh instance of the front (direct: a backend instance of its own).
start_front() {
  case $1 in
    direct) start direct "$direct" "${on_front[@]}" "$tmp/backend" -addr "127.0.0.1:$direct" ;;
    direct-fwd) start direct-fwd "$directf" "${on_front[@]}" "$tmp/backend" -addr "127.0.0.1:$directf" ;;
    switchyard)
      start switchyard "$sy" "${on_front[@]}" "${gw_main[@]}" "$tmp/gateway" serve
      start switchyard-cascade "$syc" "${on_front[@]}" "${gw_cascade[@]}" "$tmp/gateway" serve ;;
    lane)
      start lane "$syl" "${on_front[@]}" "${gw_lane[@]}" "$tmp/gateway" serve
      start lane-cascade "$sylc" "${on_front[@]}" "${gw_lane_cascade[@]}" "$tmp/gateway" serve ;;
    nginx) start nginx "$ngx" "${on_front[@]}" nginx -p "$tmp/nginx" -c "$tmp/nginx.conf" -g 'daemon off;' ;;
    nginx-fwd) start nginx-fwd "$ngxf" "${on_front[@]}" nginx -p "$tmp/nginx-fwd" -c "$tmp/nginx-fwd.conf" -g 'daemon off;' ;;
    haproxy) start haproxy "$hap" "${on_front[@]}" haproxy -db -f "$tmp/haproxy.cfg" ;;
    caddy) start caddy "$cad" "${on_front[@]}" env HOME="$tmp/caddy-home" XDG_DATA_HOME="$tmp/caddy-home" \
      XDG_CONFIG_HOME="$tmp/caddy-home" caddy run --config "$tmp/Caddyfile" --adapter caddyfile ;;
  esac
}
stop_front() { stop "$1"; [ "$1" != switchyard ] || stop switchyard-cascade; [ "$1" != lane ] || stop lane-cascade; }

# --- measurements -----------------------------------------------------------------------------------------

results=$tmp/results.txt
: >"$results"
clk=$(getconf CLK_TCK)
# ticks NAME...: CPU time (user + system, in clock ticks) used so far by the named processes and their
# descendants, those that exited and were reaped included (an old nginx worker after a reload).
ticks() {
  local n p total=0 v
  for n in "$@"; do
    for p in $(tree "${pid_of[$n]}"); do
      v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true)
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}
# wrk_parse: sets rps, p50, p99 (µs), reqs, bad (errors: non-2xx answers plus socket errors; wrk's timeout
# is 2 s per request) and kinds (the errors by kind, for the raw runs) from wrk's output in $wout.
wrk_parse() {
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$wout")
  reqs=$(awk '/ requests in / { print $1 }' <<<"$wout")
  p50=$(us "$(awk '$1 == "50%" { print $2 }' <<<"$wout")")
  p99=$(us "$(awk '$1 == "99%" { print $2 }' <<<"$wout")")
  read -r bad kinds < <(awk '/^ *Non-2xx or 3xx responses:/ { s = $NF; n += s }
    /^ *Socket errors:/ { gsub(/,/, ""); c = $4; r = $6; w = $8; t = $10; n += c + r + w + t }
    END { printf "%d non2xx=%d,connect=%d,read=%d,write=%d,timeout=%d\n", n, s, c, r, w, t }' <<<"$wout")
}
# cpu_per_req TICKS: the front's CPU µs per request of the last wrk run (reqs).
cpu_per_req() { calc "r = ${reqs:-0} + 0; if (r == 0) print \"n/a\"; else printf \"%.1f\", $1 * 1000000 / $clk / r"; }

# wrk threads: two on all cores, one when wrk has one core of its own.
wt=2
[ -z "$pinned" ] || wt=1
# measure SCENARIO FRONT ROUND: one wrk run; appends "scenario front round req/s p50us p99us errors kinds
# cpu appcpu", cpu being the CPU µs per request the front's processes used (direct: the backend instance
# itself), appcpu the backends' (what the request the front sent cost the app; direct: its own).
measure() {
  local scen=$1 front=$2 round=$3 url args t0 t1 a0 a1 per_req app_req who=$2 apps=(backend)
  case $scen in
    lat1) args=(-t1 -c1) url="http://127.0.0.1:${port[$front]}/small" ;;
    get64) args=(-t"$wt" -c64) url="http://127.0.0.1:${port[$front]}/small" ;;
    big16) args=(-t"$wt" -c16) url="http://127.0.0.1:${port[$front]}/64k" ;;
    post16) args=(-t"$wt" -c16 -s bench/post4k.lua) url="http://127.0.0.1:${port[$front]}/echo-size" ;;
    cascade64) args=(-t"$wt" -c64) url="http://127.0.0.1:${cport[$front]}/small"
      apps=(backend backend404)
      case $front in switchyard | lane) who=$front-cascade ;; esac ;;
  esac
  case $front in
    direct) apps=(direct) ;;
    direct-fwd) apps=(direct-fwd) args+=("${fwd_fields[@]}") ;;
  esac
  t0=$(ticks "$who") a0=$(ticks "${apps[@]}")
  wout=$("${on_load[@]}" wrk "${args[@]}" -d"${duration}s" --latency "$url")
  t1=$(ticks "$who") a1=$(ticks "${apps[@]}")
  wrk_parse
  per_req=$(cpu_per_req $((t1 - t0)))
  app_req=$(cpu_per_req $((a1 - a0)))
  echo "$scen $front $round ${rps:-0} $p50 $p99 $bad $kinds $per_req $app_req" >>"$results"
  log "  $scen round $((round + 1)) $front: ${rps:-0} req/s, p50 ${p50} us, p99 ${p99} us, errors $bad ($kinds), CPU $per_req us/req, app $app_req us/req"
}

scenarios=(lat1 get64 big16 post16 cascade64)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "bench: $rounds round(s) of ${duration}s runs; fronts: ${fronts[*]}; $cores cores"
start backend "$be" "${on_front[@]}" "$tmp/backend" -addr "127.0.0.1:$be"
start backend404 "$be404" "${on_front[@]}" "$tmp/backend" -addr "127.0.0.1:$be404" -notfound
for f in "${fronts[@]}"; do start_front "$f"; done
# Each cascade must ask the primary once, then the delegate once, and answer the delegate's 200.
declare -A cascade_bad=()
count() { curl -sS "http://127.0.0.1:$1/_requests"; }
for f in "${fronts[@]}"; do
  [ -n "${cport[$f]}" ] || continue
  p0=$(count "$be404") d0=$(count "$be")
  got=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:${cport[$f]}/small" || true)
  p1=$(count "$be404") d1=$(count "$be")
  if [ "$got" != "200 64" ] || [ $((p1 - p0)) != 1 ] || [ $((d1 - d0)) != 1 ]; then
    cascade_bad[$f]="check failed: answer $got, primary asked $((p1 - p0)), delegate asked $((d1 - d0)) times"
    log "bench: $f cascade ${cascade_bad[$f]}; not measured"
  fi
done
for f in "${fronts[@]}"; do # warm-up: pools filled, Go heaps sized
  "${on_load[@]}" wrk -t"$wt" -c64 -d1s "http://127.0.0.1:${port[$f]}/small" >/dev/null
  [ -z "${cport[$f]}" ] || "${on_load[@]}" wrk -t"$wt" -c64 -d1s "http://127.0.0.1:${cport[$f]}/small" >/dev/null
done
declare -A hwm=() load_at=()
for scen in "${scenarios[@]}"; do
  load_at[$scen]=$(cut -d' ' -f1 /proc/loadavg)
  for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < ${#fronts[@]}; i++)); do
      f=${fronts[$(((i + r) % ${#fronts[@]}))]}
      [ "$scen" != cascade64 ] || { [ -n "${cport[$f]}" ] && [ -z "${cascade_bad[$f]:-}" ]; } || continue
      measure "$scen" "$f" "$r"
    done
  done
  if [ "$scen" = post16 ]; then # peak RSS of the load scenarios, before the cascade runs in the same process
    for f in "${fronts[@]}"; do hwm[$f]=$(kib VmHWM "$f"); done
  fi
done
for f in "${fronts[@]}"; do stop_front "$f"; done

# Idle keep-alive connections, each front freshly started: RSS before, and while idleconns holds them.
declare -A idle_before=() idle_held=() idle_closed=()
for f in "${mem_fronts[@]}"; do
  start_front "$f"
  sleep 0.5
  idle_before[$f]=$(kib VmRSS "$f")
  "${on_load[@]}" "$tmp/idleconns" -addr "127.0.0.1:${port[$f]}" -n "$idle" -path /small >"$tmp/idle.out" 2>"$tmp/idle.err" &
  pid_of[idleconns]=$!
  for _ in $(seq 1200); do
    grep -q '^ready' "$tmp/idle.out" 2>/dev/null && break
    kill -0 "${pid_of[idleconns]}" 2>/dev/null || break
    sleep 0.05
  done
  if grep -q '^ready' "$tmp/idle.out"; then
    # Read 5 s after the last connection went idle, the same for every front: an idle keep-alive connection
    # is one that has been quiet for a while (Switchyard parks its connections after GATEWAY_IDLE_PARK_AFTER,
    # 1 s by default, and returns the memory of a parked burst with one GC).
    sleep 5
    idle_held[$f]=$(kib VmRSS "$f")
  else
    log "bench: idleconns against $f failed: $(cat "$tmp/idle.err")"
    idle_held[$f]=""
  fi
  stop idleconns
  idle_closed[$f]=$(grep -oE '^idleconns: [0-9]+' "$tmp/idle.err" | grep -oE '[0-9]+' || echo "?")
  log "  idle $f: before ${idle_before[$f]} KiB, held ${idle_held[$f]} KiB, closed by the front ${idle_closed[$f]}"
  stop_front "$f"
done

# Streaming: one large body through each freshly started front, RSS sampled every 50 ms.
declare -A st_before=() st_max=() st_secs=() st_ok=()
for f in "${mem_fronts[@]}"; do
  start_front "$f"
  sleep 0.5
  st_before[$f]=$(kib VmRSS "$f")
  maxr=${st_before[$f]}
  t0=$(date +%s%N)
  "${on_load[@]}" curl -sS -o /dev/null -w '%{http_code} %{size_download}' \
    "http://127.0.0.1:${port[$f]}/stream?bytes=$stream" >"$tmp/curl.out" 2>"$tmp/curl.err" &
  pid_of[curl]=$!
  while kill -0 "${pid_of[curl]}" 2>/dev/null; do
    v=$(kib VmRSS "$f")
    [ "$v" -le "$maxr" ] || maxr=$v
    sleep 0.05
  done
  stop curl
  t1=$(date +%s%N)
  st_max[$f]=$maxr
  st_secs[$f]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  if [ "$(cat "$tmp/curl.out")" = "200 $stream" ]; then st_ok[$f]=yes; else st_ok[$f]="no ($(cat "$tmp/curl.out" "$tmp/curl.err" | tr '\n' ' '))"; fi
  log "  stream $f: before ${st_before[$f]} KiB, max $maxr KiB, ${st_secs[$f]} s, complete ${st_ok[$f]}"
  stop_front "$f"
done

# Busy keep-alive connections (scenario 9) and reloads under them (10), Switchyard and nginx each freshly
# started, wrk keeping $busy connections busy for $busy_duration s. 9: RSS before, the peak (VmHWM summed
# over the front's processes, an upper bound), RSS 3 s after the load ended. 10: the same load while the
# front reloads its configuration every $reload_every s (Switchyard: SIGHUP; nginx: nginx -s reload), RSS
# sampled every 100 ms (nginx's old workers count while they finish); errors are what reloads cost clients.
# wrk's timeout only marks an answer slower than it (the connection goes on), so with $busy connections
# sharing one core it is raised from 2 s to 10 s: what errors count then is connections lost or refused.
reload_every=3 busy_timeout=10
busy_fronts=(switchyard nginx)
[ -z "$lane" ] || busy_fronts=(switchyard lane nginx)
declare -A busy_before=() busy_peak=() busy_after=() reload_n=() reload_failed=() reload_peak=()
# reload_front NAME: asks the front to reload its configuration; fails if the request could not be made.
reload_front() {
  case $1 in
    switchyard | lane) kill -HUP "${pid_of[$1]}" ;;
    nginx) nginx -p "$tmp/nginx" -c "$tmp/nginx.conf" -s reload 2>>"$tmp/nginx-reload.log" ;;
  esac
}
if [ "$busy" -gt 0 ]; then
  load_at[busy]=$(cut -d' ' -f1 /proc/loadavg)
  for scen in busy reload; do
    for f in "${busy_fronts[@]}"; do
      start_front "$f"
      sleep 0.5
      [ "$scen" = reload ] || busy_before[$f]=$(kib VmRSS "$f")
      t0=$(ticks "$f")
      "${on_load[@]}" wrk -t"$wt" -c"$busy" -d"${busy_duration}s" --timeout "${busy_timeout}s" --latency \
        "http://127.0.0.1:${port[$f]}/small" >"$tmp/busy.out" 2>&1 &
      pid_of[wrk]=$!
      n=0 failed=0 maxr=0 next=$((EPOCHSECONDS + reload_every))
      while kill -0 "${pid_of[wrk]}" 2>/dev/null; do
        v=$(kib VmRSS "$f")
        [ "$v" -le "$maxr" ] || maxr=$v
        if [ "$scen" = reload ] && [ "$EPOCHSECONDS" -ge "$next" ]; then
          if reload_front "$f"; then n=$((n + 1)); else failed=$((failed + 1)); fi
          next=$((next + reload_every))
        fi
        sleep 0.1
      done
      stop wrk
      t1=$(ticks "$f")
      wout=$(cat "$tmp/busy.out")
      wrk_parse
      per_req=$(cpu_per_req $((t1 - t0)))
      if [ "$scen" = busy ]; then
        busy_peak[$f]=$(kib VmHWM "$f")
        sleep 3
        busy_after[$f]=$(kib VmRSS "$f")
        log "  busy $f: $busy connections, RSS before ${busy_before[$f]} KiB, peak ${busy_peak[$f]} KiB, 3 s after ${busy_after[$f]} KiB"
      else
        # Switchyard logs a reload it refused (its log level here is error); nginx -s reload's own errors.
        if [ "$f" != nginx ]; then
          failed=$((failed + $(grep -c 'reload failed' "$tmp/$f.log" || true)))
        fi
        reload_n[$f]=$n reload_failed[$f]=$failed reload_peak[$f]=$maxr
        log "  reload $f: $n reloads ($failed failed), sampled peak RSS $maxr KiB"
      fi
      echo "$scen$busy $f 0 ${rps:-0} $p50 $p99 $bad $kinds $per_req" >>"$results"
      log "  $scen$busy $f: ${rps:-0} req/s, p50 ${p50} us, p99 ${p99} us, errors $bad ($kinds), CPU $per_req us/req"
      kill -0 "${pid_of[$f]}" 2>/dev/null || { log "bench: $f died under $scen load; its log:"; tail -n 20 "$tmp/$f.log" >&2; exit 1; }
      stop_front "$f"
    done
  done
fi

# --- report -----------------------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
[ -n "$report" ] || report="bench/results/$(date -u +%F)-$tag${pinned:+-pinned}${quick:+-quick}.md"
mkdir -p "$(dirname "$report")"
if [ -n "$pinned" ]; then
  shared_note="Split-pinned: the fronts and the backends run on core $front_cpu, wrk (and this script) on core $load_cpu. Nothing else on the machine is kept off those cores, so absolute numbers move with whatever else runs; compare the ratios within one run, and prefer the CPU per request, which other work disturbs much less than req/s."
else
  shared_note="wrk, the fronts and the backend all run on the same $cores cores, so absolute numbers move with the machine and whatever else runs on it; compare the ratios within one run, and prefer the CPU per request, which other work disturbs much less than req/s."
fi
# Idle memory per keep-alive connection before issue 18 (bench/results/2026-11-25-amd-epyc-2c-after.md).
idle_baseline=3.2
own_load=3
[ -z "$pinned" ] || own_load=2
gw_added="none"
[ ${#extra_env[@]} -eq 0 ] || gw_added=$(printf '`%s` ' "${extra_env[@]}")

{
  echo "# Switchyard bench${pinned:+, split-pinned}, $(date -u '+%F %H:%M UTC')"
  echo
  echo "$shared_note${note:+ $note}"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPU | ${cpu:-unknown}, $cores cores |"
  echo "| kernel | $(uname -sr) |"
  echo "| Go | $(go version | awk '{ print $3 }') |"
  echo "| gateway commit | \`$commit\` |"
  echo "| Switchyard settings added (--gateway-env) | ${gw_added% } |"
  echo "| nginx | $(nginx -v 2>&1 | sed 's/.*version: //') |"
  if [ -z "$pinned" ]; then
    echo "| HAProxy | $(haproxy -v | awk 'NR == 1 { print $3 }') |"
    echo "| Caddy | $(caddy version | awk '{ print $1 }') |"
  fi
  echo "| wrk | $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }') |"
  echo "| runs | $rounds round(s) of ${duration} s per front and scenario, fronts in a rotated order each round; medians shown |"
  if [ -n "$pinned" ]; then
    echo "| workers | fronts and backends on core $front_cpu (\`taskset -c $front_cpu\`): Switchyard and the backend GOMAXPROCS=1, nginx \`worker_processes 1\`; wrk with 1 thread on core $load_cpu |"
  else
    echo "| workers | every front may use all $cores cores: Switchyard and Caddy GOMAXPROCS=$cores, nginx \`worker_processes auto\` ($cores), HAProxy \`nbthread $cores\`; the backend is Go with GOMAXPROCS=$cores |"
  fi
  echo "| load average (1, 5, 15 min) | $load_start before the runs, $load_end after them (the bench itself adds about $own_load) |"
  printf '| load average (1 min) as each scenario started |'
  for k in lat1 get64 big16 post16 cascade64 busy; do [ -z "${load_at[$k]:-}" ] || printf ' %s %s,' "$k" "${load_at[$k]}"; done | sed 's/,$//'
  echo " |"
  echo "| upstream | keep-alive pool of 256 idle connections everywhere, access logs off, client keep-alive 120 s |"
  echo
  echo "\"CPU µs/req\" is the user + system time of the front's processes (from /proc) over the run divided by the"
  echo "requests wrk completed; for direct it is the backend's own, the floor under every front. \"App µs/req\" is"
  echo "the same for the backends behind the front: what the requests the front sent cost the app. nginx-fwd is"
  echo "nginx made to send the app the request fields Switchyard sends by default (the client's Host,"
  echo "X-Request-Id, X-Forwarded-For, -Host, -Proto; nginx's defaults send \`Host: backend\` alone): the like-for-like"
  echo "comparison. direct-fwd is wrk sending those fields straight to a backend of its own: what they cost the app"
  echo "itself, behind whichever front sends them."
  echo
  echo "## 1. Small GET, 1 connection (latency)"
  echo
  echo "\"Added\" is the front's p50 minus the backend's own p50 (direct)."
  echo
  echo "| front | p50 µs | p99 µs | added p50 µs | p50 ÷ nginx | added ÷ nginx | CPU µs/req | CPU ÷ nginx | app µs/req | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  d50=$(med lat1 direct 5)
  n50=$(med lat1 nginx 5)
  nadd=$(calc "printf \"%.1f\", $n50 - $d50")
  ncpu=$(med lat1 nginx 9)
  for f in "${fronts[@]}"; do
    p50=$(med lat1 "$f" 5)
    c=$(med lat1 "$f" 9)
    add=$(calc "printf \"%.1f\", $p50 - $d50")
    if [ "$f" = direct ]; then
      echo "| $f | $p50 | $(med lat1 "$f" 6) | - | $(ratio "$p50" "$n50") | - | $c | $(ratio "$c" "$ncpu") | $(med lat1 "$f" 10) | $(med lat1 "$f" 7) |"
    else
      echo "| $f | $p50 | $(med lat1 "$f" 6) | $add | $(ratio "$p50" "$n50") | $(ratio "$add" "$nadd") | $c | $(ratio "$c" "$ncpu") | $(med lat1 "$f" 10) | $(med lat1 "$f" 7) |"
    fi
  done
  titles=([1]="Small GET, 64 connections (throughput)" [2]="64 KiB GET, 16 connections" [3]="4 KiB POST, 16 connections"
    [4]="Cascade: primary answers 404, delegate serves; small GET, 64 connections")
  n=1
  for scen in get64 big16 post16 cascade64; do
    echo
    echo "## $((n + 1)). ${titles[$n]}"
    echo
    if [ "$scen" = cascade64 ]; then
      echo "Switchyard: \`GATEWAY_PRIMARY\` = a backend answering 404 to everything, \`GATEWAY_DELEGATES\` = the"
      echo "normal backend. nginx: \`proxy_intercept_errors on; error_page 404 = @fallback\`. HAProxy: \`retry-on 404\`"
      echo "with \`option redispatch 1\` to a second server (\`balance first\`). Caddy: \`handle_response\` on status 404"
      echo "proxying to the second backend. Before measuring, one request through each checks that the primary was"
      echo "asked once, then the delegate once, and the delegate's 200 came back. Direct: n/a (no front, no cascade)."
      echo
    fi
    echo "| front | req/s | ÷ nginx | p50 µs | p99 µs | CPU µs/req | CPU ÷ nginx | app µs/req | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    nr=$(med "$scen" nginx 4) ncpu=$(med "$scen" nginx 9)
    for f in "${fronts[@]}"; do
      r=$(med "$scen" "$f" 4)
      if [ "$r" = n/a ]; then echo "| $f | n/a${cascade_bad[$f]:+ (${cascade_bad[$f]})} | | | | | | | |"; continue; fi
      c=$(med "$scen" "$f" 9)
      echo "| $f | $(n0 "$r") | $(ratio "$r" "$nr") | $(med "$scen" "$f" 5) | $(med "$scen" "$f" 6) | $c | $(ratio "$c" "$ncpu") | $(med "$scen" "$f" 10) | $(med "$scen" "$f" 7) |"
    done
    n=$((n + 1))
  done
  echo
  echo "## 6-8. Memory"
  echo
  echo "RSS is summed over the front's processes (nginx: master and workers). Idle: each front freshly started,"
  echo "then $idle connections each send one keep-alive GET and stay open, read 5 s after the last one went quiet;"
  echo "KiB per idle connection = (held - before) / $idle."
  echo "Peak: VmHWM after scenarios 1-4 (summed over processes; Switchyard: the main instance, not the cascade one)."
  echo "Stream: a $stream_size body through a freshly started front, RSS sampled every 50 ms."
  echo "Direct is the backend itself, for reference."
  echo
  echo "| front | idle before MiB | $idle held MiB | KiB per idle conn | closed while held | peak under load MiB | stream before MiB | stream max MiB | stream growth MiB | stream s | stream complete |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  declare -A per_conn=() growth=()
  for f in "${mem_fronts[@]}"; do
    if [ -n "${idle_held[$f]}" ]; then
      per_conn[$f]=$(calc "printf \"%.1f\", (${idle_held[$f]} - ${idle_before[$f]}) / $idle")
      held=$(mib "${idle_held[$f]}")
    else
      per_conn[$f]=n/a held="failed"
    fi
    growth[$f]=$(mib "$((st_max[$f] - st_before[$f]))")
    echo "| $f | $(mib "${idle_before[$f]}") | $held | ${per_conn[$f]} | ${idle_closed[$f]} | $(mib "${hwm[$f]}") | $(mib "${st_before[$f]}") | $(mib "${st_max[$f]}") | ${growth[$f]} | ${st_secs[$f]} | ${st_ok[$f]} |"
  done
  if [ "$busy" -gt 0 ]; then
    echo
    echo "## 9-10. $busy busy keep-alive connections, and reloads under them"
    echo
    echo "Each front freshly started; \`wrk -t$wt -c$busy -d${busy_duration}s --timeout ${busy_timeout}s\` on /small. 9: RSS before the load, the"
    echo "peak (VmHWM summed over the front's processes), RSS 3 s after the load ended; KiB per busy connection ="
    echo "(peak - before) / $busy. 10: the same load on another fresh instance while the front reloads its"
    echo "configuration every $reload_every s (Switchyard: SIGHUP; nginx: \`nginx -s reload\`); peak RSS sampled"
    echo "every 100 ms (nginx's old workers count while they finish); the errors are what the reloads cost clients."
    echo
    echo "| front | before MiB | peak MiB | 3 s after MiB | KiB per busy conn | req/s | ÷ nginx | CPU µs/req | errors | reloads (failed) | req/s reloading | errors reloading | peak reloading MiB |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    nr=$(med "busy$busy" nginx 4)
    for f in "${busy_fronts[@]}"; do
      r=$(med "busy$busy" "$f" 4)
      echo "| $f | $(mib "${busy_before[$f]}") | $(mib "${busy_peak[$f]}") | $(mib "${busy_after[$f]}") | $(calc "printf \"%.1f\", (${busy_peak[$f]} - ${busy_before[$f]}) / $busy") | $(n0 "$r") | $(ratio "$r" "$nr") | $(med "busy$busy" "$f" 9) | $(med "busy$busy" "$f" 7) | ${reload_n[$f]} (${reload_failed[$f]}) | $(n0 "$(med "reload$busy" "$f" 4)") | $(med "reload$busy" "$f" 7) | $(mib "${reload_peak[$f]}") |"
    done
  fi
  echo
  echo "## Targets (issue 18)"
  echo
  met() { if [ "$(calc "print ($1) ? 1 : 0")" = 1 ]; then echo met; else echo "**not met**"; fi; }
  mode=${pinned:+split-pinned}
  mode=${mode:-all cores}
  ng=$(med get64 nginx 4) ncg=$(med get64 nginx 9)
  sw_fronts=(switchyard)
  [ -z "$lane" ] || sw_fronts=(switchyard lane)
  for f in "${sw_fronts[@]}"; do
    who=Switchyard
    [ "$f" = switchyard ] || who="Switchyard, lane on"
    sg=$(med get64 "$f" 4) scg=$(med get64 "$f" 9)
    sadd=$(calc "printf \"%.1f\", $(med lat1 "$f" 5) - $d50")
    echo "- $who: throughput, small GET at 64 connections >= 1.0 x nginx ($mode): $(met "$sg >= $ng") ($(n0 "$sg") vs $(n0 "$ng") req/s, $(ratio "$sg" "$ng") x; CPU per request $scg vs $ncg µs, $(ratio "$scg" "$ncg") x nginx's)"
    echo "- $who: added p50 at 1 connection <= nginx's ($mode): $(met "$sadd <= $nadd") (+$sadd µs vs +$nadd µs over direct's $d50)"
    fg=$(med get64 nginx-fwd 4) fadd=$(calc "printf \"%.1f\", $(med lat1 nginx-fwd 5) - $d50")
    echo "  - like for like, against nginx-fwd (the same request fields): throughput $(ratio "$sg" "$fg") x ($(met "$sg >= $fg")), added p50 +$sadd vs +$fadd µs ($(met "$sadd <= $fadd")); app CPU per request $(med get64 "$f" 10) µs behind $who, $(med get64 nginx 10) behind nginx, $(med get64 nginx-fwd 10) behind nginx-fwd"
    echo "  - what the fields cost the app itself (wrk straight at it, direct-fwd against direct): $(med get64 direct-fwd 9) vs $(med get64 direct 9) µs of CPU per request, $(n0 "$(med get64 direct-fwd 4)") vs $(n0 "$(med get64 direct 4)") req/s ($(ratio "$(med get64 direct-fwd 4)" "$(med get64 direct 4)") x)"
    if [ "${per_conn[$f]}" = n/a ]; then
      echo "- $who: idle memory per keep-alive connection <= before issue 18 ($idle_baseline KiB): **not met** (the idle run failed)"
    else
      echo "- $who: idle memory per keep-alive connection <= before issue 18 ($idle_baseline KiB, 2026-11-25): $(met "${per_conn[$f]} <= $idle_baseline") (${per_conn[$f]} KiB per connection; nginx ${per_conn[nginx]})"
    fi
    if [ "$busy" -gt 0 ]; then
      sp=$((busy_peak[$f] - busy_before[$f])) np=$((busy_peak[nginx] - busy_before[nginx]))
      echo "- $who: peak RSS under $busy busy connections <= 2 x nginx's: $(met "${busy_peak[$f]} <= 2 * ${busy_peak[nginx]}") ($(mib "${busy_peak[$f]}") vs $(mib "${busy_peak[nginx]}") MiB, $(ratio "${busy_peak[$f]}" "${busy_peak[nginx]}") x; growth under the load $(mib "$sp") vs $(mib "$np") MiB)"
      se=$(med "reload$busy" "$f" 7) ne=$(med "reload$busy" nginx 7)
      echo "- $who: reloads under $busy busy connections lose nothing: $(met "$se == 0 && ${reload_failed[$f]} == 0") ($se errors over ${reload_n[$f]} reloads; nginx $ne over ${reload_n[nginx]})"
    fi
  done
  if [ -z "$pinned" ]; then
    echo
    echo "## Targets (issue 7)"
    echo
    sg=$(med get64 switchyard 4) cg=$(med get64 caddy 4)
    echo "- Throughput, small GET at 64 connections >= 2 x Caddy: $(met "$sg >= 2 * $cg") ($(n0 "$sg") vs $(n0 "$cg") req/s, $(ratio "$sg" "$cg") x)"
    sc=$(med cascade64 switchyard 4) nc=$(med cascade64 nginx 4)
    echo "- Cascade >= 1.0 x nginx's \`error_page 404 = @fallback\`: $(met "$sc >= $nc") ($(n0 "$sc") vs $(n0 "$nc") req/s, $(ratio "$sc" "$nc") x)"
    if [ "${per_conn[switchyard]}" != n/a ]; then
      echo "- Memory <= 10 KiB per idle keep-alive connection: $(met "${per_conn[switchyard]} <= 10") (${per_conn[switchyard]} KiB; nginx ${per_conn[nginx]}, HAProxy ${per_conn[haproxy]}, Caddy ${per_conn[caddy]})"
    fi
    echo "- Flat RSS while streaming $stream_size (growth <= 16 MiB, the transfer complete): $(met "${growth[switchyard]} <= 16 && \"${st_ok[switchyard]}\" == \"yes\"") (+${growth[switchyard]} MiB; nginx +${growth[nginx]}, HAProxy +${growth[haproxy]}, Caddy +${growth[caddy]})"
  fi
  echo
  echo "Raw runs (scenario, front, round from 0, req/s, p50 µs, p99 µs, errors, their kinds, CPU µs per request,"
  echo "the app's CPU µs per request;"
  echo "wrk counts an answer slower than 2 s, ${busy_timeout:-10} s in the busy and reload runs, as a timeout error):"
  echo
  echo '```'
  cat "$results"
  echo '```'
} >"$report"
cat "$report"
log "bench: results in $report"
