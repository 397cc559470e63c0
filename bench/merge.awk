# merge.awk: bench/run's bench/results.csv from zchan-perf's CSV files (one
# per suite, named SUITE.csv) and the Go reference's (all in one file named
# go.all, given first). Output columns: suite, zchan-perf's columns without
# its status, the Go reference (in-process rows only; ratio_go is zchan's
# median rate over Go's), the target verdict (target rows only), status.
BEGIN {
    FS = ","
    print "suite,workload,transport,size,count,senders,receivers,baseline,repeat," \
          "zchan_msgs_per_s,zchan_mb_per_s,raw_msgs_per_s,raw_mb_per_s,ratio," \
          "zchan_p50_us,zchan_p99_us,zchan_max_us,raw_p50_us,raw_p99_us,raw_max_us," \
          "nng_msgs_per_s,nng_mb_per_s,ratio_nng,nng_p50_us,nng_p99_us,nng_max_us," \
          "go_msgs_per_s,go_mb_per_s,ratio_go,go_p50_us,go_p99_us,go_max_us," \
          "target_metric,target_value,target,target_met,nng_value,ahead_of_nng,status"
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

FILENAME ~ /go\.all$/ {
    splitcsv($0, g)
    key = g[1] SUBSEP g[3] SUBSEP g[4] SUBSEP g[5] SUBSEP g[6]
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
    key = f[1] SUBSEP f[3] SUBSEP f[4] SUBSEP f[5] SUBSEP f[6]
    gocols = ",,,,,"
    if (f[2] == "inproc" && key in go) {
        rg = ""
        if (num(f[9]) && num(gorate[key]) && gorate[key] > 0)
            rg = r4(f[9] / gorate[key])
        gocols = sprintf(go[key], rg)
        if (gost[key] != "ok")
            st = st "; " gost[key]
    }
    line = line "," gocols
    # Targets (issue #6): zchan against raw in the same run, and ahead of nng.
    metric = value = target = met = nv = nmet = ""
    if (suite ~ /^t-/) {
        if (f[1] == "pingpong") {
            metric = "p50 round trip zchan/raw"
            target = "<= 1.5"
            if (num(f[14]) && num(f[17]) && f[17] > 0)
                value = r4(f[14] / f[17])
            if (num(f[14]) && num(f[23]) && f[23] > 0)
                nv = r4(f[14] / f[23])
            if (value != "") met = value <= 1.5 ? "yes" : "no"
            if (nv != "") nmet = nv <= 1 ? "yes" : "no"
        } else {
            metric = "msgs/s zchan/raw"
            lim = suite == "t-anycast-1m" ? 0.9 : (suite ~ /^t-anycast-16/ && f[2] == "inproc") ? 0.5 : 0.8
            target = ">= " lim
            value = f[13]
            nv = f[22]
            if (value != "") met = value >= lim ? "yes" : "no"
            if (nv != "") nmet = nv >= 1 ? "yes" : "no"
        }
    }
    line = line "," metric "," value "," target "," met "," nv "," nmet
    gsub(/"/, "\"\"", st)
    print line ",\"" st "\""
}
