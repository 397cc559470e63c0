# merge.awk: bench/run's bench/results.csv from zchan-perf's CSV files (one
# per suite, named SUITE.csv) and the in-process references: Go's (all in one
# file named go.all) and the C queue's (cq.all), given first. Output columns:
# suite, zchan-perf's columns without its status, the Go reference
# (in-process rows only; ratio_go is zchan's median rate over Go's; a suite
# whose name has "select" takes Go's -select row), the target verdict (target
# and relay rows only), the C queue (cq_msgs_per_s, ratio_cq: anycast
# in-process rows; it has no select, so a select row gets its plain figure),
# status.
BEGIN {
    FS = ","
    print "suite,workload,transport,size,count,senders,receivers,baseline,repeat," \
          "zchan_msgs_per_s,zchan_mb_per_s,raw_msgs_per_s,raw_mb_per_s,ratio," \
          "zchan_p50_us,zchan_p99_us,zchan_max_us,raw_p50_us,raw_p99_us,raw_max_us," \
          "nng_msgs_per_s,nng_mb_per_s,ratio_nng,nng_p50_us,nng_p99_us,nng_max_us," \
          "go_msgs_per_s,go_mb_per_s,ratio_go,go_p50_us,go_p99_us,go_max_us," \
          "target_metric,target_value,target,target_met,nng_value,ahead_of_nng,cq_msgs_per_s,ratio_cq,status"
}

# Splits a CSV line whose last field is a quoted status: the fields before it
# go to f, the status (unquoted) to the global st. Returns the field count.
function splitcsv(line, f,    i) {
    i = index(line, ",\"")
    if (i == 0) {
        st = ""
        return split(line, f, ",")
    }
    st = substr(line, i + 2)
    sub(/"$/, "", st)
    gsub(/""/, "\"", st)
    return split(substr(line, 1, i - 1), f, ",")
}

function num(x) { return x != "" }
function r4(x) { return sprintf("%.4f", x) }

/^workload,/ { next }                       # header rows

FILENAME ~ /cq\.all$/ {
    splitcsv($0, g)
    key = g[1] SUBSEP g[3] SUBSEP g[4] SUBSEP g[5] SUBSEP g[6]
    cqrate[key] = g[9]
    cqst[key] = st
    next
}

FILENAME ~ /go\.all$/ {
    splitcsv($0, g)
    # Go's -select rows (baseline go-select) apart from the others.
    key = (g[7] == "go-select" ? "select" : "") SUBSEP g[1] SUBSEP g[3] SUBSEP g[4] SUBSEP g[5] SUBSEP g[6]
    go[key] = g[9] "," g[10] ",%s," g[11] "," g[12] "," g[13]
    gorate[key] = g[9]
    gost[key] = st
    next
}

{
    n = splitcsv($0, f)
    suite = FILENAME
    sub(/.*\//, "", suite)
    sub(/\.csv$/, "", suite)
    line = suite
    for (i = 1; i <= 25; i++)
        line = line "," f[i]
    # Go, for in-process rows of the same shape.
    key = (suite ~ /select/ ? "select" : "") SUBSEP f[1] SUBSEP f[3] SUBSEP f[4] SUBSEP f[5] SUBSEP f[6]
    gocols = ",,,,,"
    rg = ""
    if (f[2] == "inproc" && key in go) {
        if (num(f[9]) && num(gorate[key]) && gorate[key] > 0)
            rg = r4(f[9] / gorate[key])
        gocols = sprintf(go[key], rg)
        if (gost[key] != "ok")
            st = st "; " gost[key]
    }
    line = line "," gocols
    # Targets (issue #14). t-: the one-hop shape against raw direct, and
    # against Go for anycast at capacity 10 in one process; r-: the relay
    # shape against raw through a zmq_proxy (the same two hops). And ahead of
    # nng where it ran.
    metric = value = target = met = nv = nmet = ""
    if (suite ~ /^[tr]-/) {
        if (f[1] == "pingpong") {
            metric = "p50 round trip zchan/raw"
            target = "<= 1.2"
            if (num(f[14]) && num(f[17]) && f[17] > 0)
                value = r4(f[14] / f[17])
            if (num(f[14]) && num(f[23]) && f[23] > 0)
                nv = r4(f[14] / f[23])
            if (value != "") met = value <= 1.2 ? "yes" : "no"
            if (nv != "") nmet = nv <= 1 ? "yes" : "no"
        } else {
            metric = "msgs/s zchan/raw"
            value = f[13]
            if (suite ~ /^r-/)
                lim = 0.8
            else if (suite == "t-anycast-1m")
                lim = 0.9
            else if (suite ~ /^t-(anycast|select)-16$/ && f[2] == "inproc") {
                metric = "msgs/s zchan/go"
                lim = suite ~ /select/ ? 0.25 : 0.333
                value = rg
            } else if (suite ~ /^t-anycast-16$/)
                lim = 0.5
            else
                lim = (suite ~ /^t-anycast-16-cap/ && f[2] == "inproc") ? 0.5 : 0.8
            target = ">= " lim
            nv = f[22]
            if (value != "") met = value >= lim ? "yes" : "no"
            if (nv != "") nmet = nv >= 1 ? "yes" : "no"
        }
    }
    line = line "," metric "," value "," target "," met "," nv "," nmet
    # The C queue, for in-process anycast rows of the same shape.
    ckey = f[1] SUBSEP f[3] SUBSEP f[4] SUBSEP f[5] SUBSEP f[6]
    cqcols = ","
    if (f[2] == "inproc" && ckey in cqrate) {
        rc = ""
        if (num(f[9]) && num(cqrate[ckey]) && cqrate[ckey] > 0)
            rc = r4(f[9] / cqrate[ckey])
        cqcols = cqrate[ckey] "," rc
        if (cqst[ckey] != "ok")
            st = st "; " cqst[ckey]
    }
    line = line "," cqcols
    gsub(/"/, "\"\"", st)
    print line ",\"" st "\""
}
