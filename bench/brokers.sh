# bench/brokers.sh: the "relay vs brokers" rows of bench/run (issue #14, item
# 7; docs/BENCHMARKS.md, "Relay and brokers"). Sourced by bench/run, which
# provides: root, build, out, sudo, quick, repeat, say, have_pkg, apt_install,
# and the variable bad.
#
#   brokers_install   installs nats-server, libnats-dev, rabbitmq-server and
#                     librabbitmq-dev where missing (apt-get, each on its own),
#                     and stops a broker service that this install started
#   brokers_section   starts zchan-relay, nats-server and rabbitmq-server on
#                     127.0.0.1 (free ports, state in a temporary directory),
#                     runs zchan-brokerbench and zchan-perf's raw proxy in
#                     turn per repeat, stops the servers (also on Ctrl-C), and
#                     prints the table (bench/brokers.awk), also written to
#                     bench/brokers.csv
#
# Nothing here sends traffic to any address but 127.0.0.1.

bb_pkgs="nats-server libnats-dev rabbitmq-server librabbitmq-dev"

brokers_install() {
    bb_new=""
    for p in $bb_pkgs; do have_pkg "$p" || bb_new="$bb_new $p"; done
    [ -n "$bb_new" ] || return 0
    say "installing$bb_new (the relay vs brokers rows)"
    $sudo apt-get update -q >/dev/null 2>&1
    for p in $bb_new; do
        apt_install "$p" || { say "NOTE: could not install $p (see $aptlog); its rows will say so"; continue; }
        # Debian starts a freshly installed broker as a system service
        # (nats-server on 127.0.0.1:4222; rabbitmq-server on every address,
        # port 5672). bench/run runs its own on other ports, so this one is
        # not needed: stop it, and keep it from starting at boot.
        case "$p" in
        nats-server|rabbitmq-server)
            if [ -d /run/systemd/system ] && systemctl is-active --quiet "$p" 2>/dev/null; then
                say "stopping and disabling the $p service that installing it started"
                $sudo systemctl disable --now "$p" >/dev/null 2>&1 || say "NOTE: could not stop the $p service"
            fi ;;
        esac
    done
}

# The servers: pids, the temporary directory, and a stop that is safe to call twice.
bb_dir=""
bb_relay_pid=""
bb_nats_pid=""
bb_rmq_pid=""
bb_epmd_pid=""

# bb_kill PID [SECONDS]: SIGTERM, then SIGKILL after the grace time.
bb_kill() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null
    bb_i=0
    while kill -0 "$1" 2>/dev/null && [ $bb_i -lt $(( ${2:-5} * 10 )) ]; do sleep 0.1; bb_i=$((bb_i + 1)); done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

brokers_stop() {
    # RabbitMQ: the Erlang VM (its pid file) ends the node; then its wrapper.
    if [ -n "$bb_rmq_pid" ]; then
        [ -s "$bb_dir/rmq/pid" ] && bb_kill "$(cat "$bb_dir/rmq/pid")" 15
        bb_kill "$bb_rmq_pid" 5
    fi
    bb_kill "$bb_epmd_pid" 5
    bb_kill "$bb_nats_pid" 5
    bb_kill "$bb_relay_pid" 5
    bb_rmq_pid="" bb_epmd_pid="" bb_nats_pid="" bb_relay_pid=""
    [ -n "$bb_dir" ] && rm -rf "$bb_dir"
    bb_dir=""
}

# bb_wait_file FILE SECONDS: waits until FILE is not empty.
bb_wait_file() {
    bb_i=0
    while [ ! -s "$1" ] && [ $bb_i -lt $(( $2 * 10 )) ]; do sleep 0.1; bb_i=$((bb_i + 1)); done
    [ -s "$1" ]
}

bb_start_relay() {
    "$build/tools/zchan-relay" --bind tcp://127.0.0.1:0 --endpoint-file "$bb_dir/relay.ep" \
        >"$out/brokers-relay.log" 2>&1 &
    bb_relay_pid=$!
    bb_wait_file "$bb_dir/relay.ep" 10 || return 1
    bb_relay_url=$(sed -n '1p' "$bb_dir/relay.ep")
    "$bb_bin" --probe --broker zchan --url "$bb_relay_url" --deadline-ms 10000 2>>"$out/brokers-relay.log"
}

bb_start_nats() {
    command -v nats-server >/dev/null 2>&1 || { bb_nats_why="nats-server is not installed"; return 1; }
    "$bb_bin" --help | grep -q "Compiled in:.*nats" || { bb_nats_why="built without libnats-dev"; return 1; }
    mkdir -p "$bb_dir/nats"
    # -p -1: a free port, written to the ports file once it listens.
    nats-server -a 127.0.0.1 -p -1 --ports_file_dir "$bb_dir/nats" -l "$out/brokers-nats.log" \
        >>"$out/brokers-nats.log" 2>&1 &
    bb_nats_pid=$!
    bb_nats_why="did not start (see $out/brokers-nats.log)"
    bb_wait_file "$bb_dir/nats/nats-server_$bb_nats_pid.ports" 10 || return 1
    bb_nats_url=$(sed -n 's|.*"\(nats://127\.0\.0\.1:[0-9]*\)".*|\1|p' "$bb_dir/nats/nats-server_$bb_nats_pid.ports")
    [ -n "$bb_nats_url" ] || return 1
    "$bb_bin" --probe --broker nats --url "$bb_nats_url" --deadline-ms 10000 2>>"$out/brokers-nats.log"
}

bb_start_rabbitmq() {
    bb_rmq_bin=/usr/lib/rabbitmq/bin/rabbitmq-server
    [ -x "$bb_rmq_bin" ] && command -v epmd >/dev/null 2>&1 || { bb_rmq_why="rabbitmq-server is not installed"; return 1; }
    "$bb_bin" --help | grep -q "Compiled in:.*rabbitmq" || { bb_rmq_why="built without librabbitmq-dev"; return 1; }
    bb_rmq_why="did not start (see $out/brokers-rabbitmq.log)"
    bb_r="$bb_dir/rmq"
    mkdir -p "$bb_r/home"
    : >"$bb_r/enabled_plugins"
    : >"$bb_r/rabbitmq.conf"
    : >"$bb_r/rabbitmq-env.conf"
    # epmd's port, AMQP's, and the node's distribution port.
    set -- $("$bb_bin" --free-ports 3)
    [ $# -eq 3 ] || return 1
    # Our own epmd, on 127.0.0.1 and a free port (a system epmd on 4369 is
    # not touched), ready when it answers.
    ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$1" >"$out/brokers-epmd.log" 2>&1 &
    bb_epmd_pid=$!
    bb_i=0
    until epmd -port "$1" -names >/dev/null 2>&1; do
        bb_i=$((bb_i + 1))
        [ $bb_i -lt 100 ] && kill -0 "$bb_epmd_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    # Every path and port of the node in the temporary directory; the files
    # of /etc/rabbitmq are not read; HOME holds the node's Erlang cookie.
    (
        unset NOTIFY_SOCKET
        export HOME="$bb_r/home" ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$1" \
            RABBITMQ_NODENAME="zchan-bench-$$@localhost" RABBITMQ_USE_LONGNAME=false \
            RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$2" RABBITMQ_DIST_PORT="$3" \
            RABBITMQ_MNESIA_BASE="$bb_r/mnesia" RABBITMQ_LOG_BASE="$bb_r/log" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$bb_r/enabled_plugins" RABBITMQ_PLUGINS_EXPAND_DIR="$bb_r/plugins" \
            RABBITMQ_CONFIG_FILE="$bb_r/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$bb_r/rabbitmq-env.conf" \
            RABBITMQ_ADVANCED_CONFIG_FILE="$bb_r/advanced.config" RABBITMQ_PID_FILE="$bb_r/pid" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        exec "$bb_rmq_bin"
    ) >"$out/brokers-rabbitmq.log" 2>&1 &
    bb_rmq_pid=$!
    bb_rmq_url="amqp://127.0.0.1:$2"
    # Ready when an AMQP login and channel open work (up to 90 s: the first
    # start of a node makes its database).
    bb_i=0
    while [ $bb_i -lt 45 ]; do
        kill -0 "$bb_rmq_pid" 2>/dev/null || return 1
        "$bb_bin" --probe --broker rabbitmq --url "$bb_rmq_url" --deadline-ms 2000 2>/dev/null && return 0
        bb_i=$((bb_i + 1))
    done
    return 1
}

# bb_one IMPL WORKLOAD CMD...: one run; its rate, publisher rate and status
# as a line of $out/brokers-runs.csv (rep,workload,impl,rate,pub,status).
bb_one() {
    bb_impl=$1 bb_wl=$2
    shift 2
    timeout --signal=TERM 150 "$@" >"$out/brokers-one.csv" 2>>"$out/brokers.log"
    bb_rc=$?
    # The columns by their header names: zchan-brokerbench's msgs_per_s and
    # pub_msgs_per_s, or zchan-perf's raw_msgs_per_s.
    awk -v rep="$bb_rep" -v wl="$bb_wl" -v impl="$bb_impl" -v rc="$bb_rc" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NR == 2 {
            q = index($0, ",\""); st = substr($0, q + 2); sub(/"$/, "", st); gsub(/,/, ";", st)
            split(substr($0, 1, q - 1), f, ",")
            r = ("msgs_per_s" in col) ? f[col["msgs_per_s"]] : f[col["raw_msgs_per_s"]]
            p = ("pub_msgs_per_s" in col) ? f[col["pub_msgs_per_s"]] : ""
            printf "%s,%s,%s,%s,%s,%s\n", rep, wl, impl, r, p, st; done = 1 }
        END { if (!done) printf "%s,%s,%s,,,FAILED: exit %s (see brokers.log)\n", rep, wl, impl, rc }
    ' FS=, "$out/brokers-one.csv" >>"$out/brokers-runs.csv"
    [ $bb_rc -ne 130 ] && [ $bb_rc -ne 143 ] || exit 130
}

brokers_section() {
    bb_bin="$build/tools/zchan-brokerbench"
    if [ ! -x "$bb_bin" ]; then
        say "NOTE: no $bb_bin in this build: no relay vs brokers rows"
        return 0
    fi
    bb_reps=${repeat:-$([ "$quick" -eq 1 ] && echo 3 || echo 5)}
    bb_dir=$(mktemp -d "${TMPDIR:-/tmp}/zchan-brokers.XXXXXX") || { say "NOTE: no temporary directory: no broker rows"; return 0; }
    trap brokers_stop EXIT
    trap 'brokers_stop; exit 130' INT TERM HUP
    : >"$out/brokers-runs.csv"
    : >"$out/brokers.log"
    say "relay vs brokers: starting zchan-relay, nats-server and rabbitmq-server on 127.0.0.1"
    bb_relay=1 bb_nats=1 bb_rmq=1 bb_nats_why="" bb_rmq_why=""
    bb_start_relay || { bb_relay=0; say "NOTE: zchan-relay did not start (see $out/brokers-relay.log)"; }
    if bb_start_nats; then bb_nats_why=""; else bb_nats=0; say "NOTE: NATS: $bb_nats_why: no NATS column"; fi
    if bb_start_rabbitmq; then bb_rmq_why=""; else bb_rmq=0; say "NOTE: RabbitMQ: $bb_rmq_why: no RabbitMQ column"; fi
    bb_n_any=40000
    bb_n_bc=20000
    bb_rep=1
    while [ $bb_rep -le "$bb_reps" ]; do
        say "relay vs brokers: run $bb_rep of $bb_reps"
        for bb_w in anycast broadcast; do
            if [ $bb_w = anycast ]; then bb_shape="-r 1 -n $bb_n_any"; else bb_shape="-r 4 -n $bb_n_bc"; fi
            if [ $bb_relay -eq 1 ]; then
                if [ $bb_w = anycast ]; then
                    bb_one zchan10 anycast "$bb_bin" --csv --broker zchan --url "$bb_relay_url" -w anycast $bb_shape --capacity 10
                    bb_one zchan1000 anycast "$bb_bin" --csv --broker zchan --url "$bb_relay_url" -w anycast $bb_shape --capacity 1000
                else
                    bb_one zchan broadcast "$bb_bin" --csv --broker zchan --url "$bb_relay_url" -w broadcast $bb_shape
                fi
            fi
            bb_one raw $bb_w "$build/tools/zchan-perf" --csv --impl raw -w $bb_w -s 1 $bb_shape -t tcp --size 16 \
                --baseline proxy --repeat 1
            [ $bb_nats -eq 0 ] || bb_one nats $bb_w "$bb_bin" --csv --broker nats --url "$bb_nats_url" -w $bb_w $bb_shape
            [ $bb_rmq -eq 0 ] || bb_one rabbitmq $bb_w "$bb_bin" --csv --broker rabbitmq --url "$bb_rmq_url" -w $bb_w $bb_shape
        done
        bb_rep=$((bb_rep + 1))
    done
    bb_versions="nats-server $(nats-server --version 2>/dev/null | sed 's/.*v//' || echo '-'), libnats-dev $(dpkg-query -W -f='${Version}' libnats-dev 2>/dev/null || echo '-'), rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '-'), librabbitmq-dev $(dpkg-query -W -f='${Version}' librabbitmq-dev 2>/dev/null || echo '-')"
    brokers_stop
    trap - EXIT INT TERM HUP
    echo "brokers:   $bb_versions" >>bench/machine.txt
    awk -v reps="$bb_reps" -v nany="$bb_n_any" -v nbc="$bb_n_bc" -v nats_why="$bb_nats_why" -v rmq_why="$bb_rmq_why" \
        -v csv=bench/brokers.csv -f bench/brokers.awk "$out/brokers-runs.csv"
    # zchan or raw failing is a problem; a broker's trouble is reported in its row.
    if grep -q ',\(zchan[0-9]*\|raw\),.*,FAILED\|,\(zchan[0-9]*\|raw\),.*,LOSSY' "$out/brokers-runs.csv"; then
        say "SOME zchan OR raw RELAY ROWS FAILED: see $out/brokers-runs.csv"
        bad=1
    fi
}
