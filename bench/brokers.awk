# brokers.awk: bench/run's "relay vs brokers" table (bench/brokers.sh) from
# the runs it made, one line each: rep,workload,impl,msgs_per_s,pub_msgs_per_s,status
# (impl: zchan10, zchan1000 or zchan for the relay, raw, nats, rabbitmq).
# Variables: reps, nany and nbc (messages per anycast and broadcast run),
# nats_why and rmq_why (why a broker did not run, "" if it did), csv (the
# file for the summary rows).
BEGIN { FS = "," }
{
    key = $2 SUBSEP $3
    ran[key]++
    if ($4 != "" && ($6 == "ok" || $6 ~ /^LOSSY/)) { # a lossy run counts, and its status says what was lost
        rate[key, $1] = $4
        pub[key, $1] = $5
    }
    if ($6 != "ok") {
        nbad[key]++
        if (!(key in why)) why[key] = $6
    }
    if ($1 > maxrep) maxrep = $1
}

function median(v, n,    i, j, t) {
    if (n == 0) return ""
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
# The median over the runs of an implementation's rate (pub: publisher rate).
function med(wl, impl, usepub,    r, n, v) {
    n = 0
    for (r = 1; r <= maxrep; r++)
        if ((wl SUBSEP impl, r) in rate) {
            x = usepub ? pub[wl SUBSEP impl, r] : rate[wl SUBSEP impl, r]
            if (x != "") v[++n] = x + 0
        }
    return median(v, n)
}
# The median over the runs of zchan's rate over the other's, in the same run.
function ratio(wl, z, other,    r, n, v) {
    n = 0
    for (r = 1; r <= maxrep; r++)
        if ((wl SUBSEP z, r) in rate && (wl SUBSEP other, r) in rate && rate[wl SUBSEP other, r] > 0)
            v[++n] = rate[wl SUBSEP z, r] / rate[wl SUBSEP other, r]
    return median(v, n)
}
function fmt(x) {
    if (x == "") return "-"
    if (x >= 1e6) return sprintf("%.2fM", x / 1e6)
    if (x >= 1e3) return sprintf("%.1fk", x / 1e3)
    return sprintf("%.0f", x)
}
function rat(x) { return x == "" ? "-" : sprintf("%.3f", x) }
function n0(x) { return x == "" ? "" : sprintf("%.0f", x) }
function n4(x) { return x == "" ? "" : sprintf("%.4f", x) }
function cell(wl, impl, missing) { return missing != "" ? "n/a" : fmt(med(wl, impl, 0)) }

END {
    nrow = 3
    label[1] = "anycast 1->1 cap 10";   wl[1] = "anycast";   z[1] = "zchan10"
    label[2] = "anycast 1->1 cap 1000"; wl[2] = "anycast";   z[2] = "zchan1000"
    label[3] = "broadcast 1->4";        wl[3] = "broadcast"; z[3] = "zchan"
    printf "\nRelay vs brokers (issue #14 item 7): sender -> zchan-relay, zmq_proxy or broker -> receiver(s),\n"
    printf "each in its own process, tcp on 127.0.0.1, 16 B. anycast %d messages, broadcast %d to each of 4.\n", nany, nbc
    printf "msg/s received: medians of %d runs, every implementation once per run in turn; ratios are the\n", reps
    printf "medians of zchan's rate over the other's in the same run. Target: >= 0.8 of raw, ahead of both brokers.\n\n"
    printf "%-22s | %9s %9s %9s %9s | %9s %10s %14s | %-8s %s\n", "case", "relay", "raw proxy", "NATS", "RabbitMQ",
           "zchan/raw", "zchan/NATS", "zchan/RabbitMQ", "0.8 raw", "ahead of brokers"
    print "case,zchan_relay_msgs_per_s,raw_proxy_msgs_per_s,nats_msgs_per_s,rabbitmq_msgs_per_s,ratio_raw,ratio_nats," \
          "ratio_rabbitmq,zchan_pub_msgs_per_s,nats_pub_msgs_per_s,rabbitmq_pub_msgs_per_s,target_raw_met,ahead_of_brokers" >csv
    met_raw = met_ahead = 0
    for (i = 1; i <= nrow; i++) {
        w = wl[i]
        rr = ratio(w, z[i], "raw")
        rn = nats_why == "" ? ratio(w, z[i], "nats") : ""
        rm = rmq_why == "" ? ratio(w, z[i], "rabbitmq") : ""
        vraw = rr == "" ? "-" : rr >= 0.8 ? "yes" : "no"
        if (rn == "" && rm == "") va = "-"
        else if ((rn != "" && rn < 1) || (rm != "" && rm < 1)) va = "no"
        else va = "yes"
        if (va == "yes" && (rn == "" || rm == "")) va = "yes (" (rn == "" ? "no NATS" : "no RabbitMQ") ")"
        if (vraw == "yes") met_raw++
        if (va == "yes") met_ahead++
        printf "%-22s | %9s %9s %9s %9s | %9s %10s %14s | %-8s %s\n", label[i], fmt(med(w, z[i], 0)),
               fmt(med(w, "raw", 0)), cell(w, "nats", nats_why), cell(w, "rabbitmq", rmq_why), rat(rr), rat(rn),
               rat(rm), vraw, va
        printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", label[i], n0(med(w, z[i], 0)), n0(med(w, "raw", 0)),
               n0(med(w, "nats", 0)), n0(med(w, "rabbitmq", 0)), n4(rr), n4(rn), n4(rm), n0(med(w, z[i], 1)),
               n0(med(w, "nats", 1)), n0(med(w, "rabbitmq", 1)), vraw, va >csv
    }
    printf "\nTargets met: >= 0.8 of raw through zmq_proxy %d of %d rows; ahead of both brokers %d of %d.\n",
           met_raw, nrow, met_ahead, nrow
    printf "\nPublisher side, msg/s from the start until the relay or broker had taken the last message\n"
    printf "(zchan: the sender's flush; NATS: a PING/PONG; RabbitMQ: a basic.qos round trip; no confirms):\n"
    printf "%-22s | %9s %9s %9s\n", "case", "relay", "NATS", "RabbitMQ"
    for (i = 1; i <= nrow; i++) {
        w = wl[i]
        printf "%-22s | %9s %9s %9s\n", label[i], fmt(med(w, z[i], 1)),
               nats_why != "" ? "n/a" : fmt(med(w, "nats", 1)), rmq_why != "" ? "n/a" : fmt(med(w, "rabbitmq", 1))
    }
    if (nats_why != "") printf "NATS: not run: %s.\n", nats_why
    if (rmq_why != "") printf "RabbitMQ: not run: %s.\n", rmq_why
    for (k in ran)
        if (k in nbad) {
            split(k, kk, SUBSEP)
            printf "status, %s %s: %d of %d runs lossy or failed (failed ones not counted): %s\n", kk[1], kk[2], nbad[k], ran[k], why[k]
        }
}
