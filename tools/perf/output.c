/*  output.c: zchan-perf's results, a table or CSV, on g_out (perf.h).
    bench/run, bench/compare-builds and the awk scripts of bench/ read the
    CSV by column name, and people read the table: both keep their shape. */
#define _GNU_SOURCE
#include "perf.h"
#include <string.h>
#ifdef ZCHAN_PERF_NNG
#include <nng/nng.h>
#endif

FILE *g_out;

static const char *s_fmt_size(size_t s, char *buf, size_t n)
{
    if (s >= 1048576 && s % 1048576 == 0)
        snprintf(buf, n, "%zu MiB", s / 1048576);
    else if (s >= 1024 && s % 1024 == 0)
        snprintf(buf, n, "%zu KiB", s / 1024);
    else
        snprintf(buf, n, "%zu B", s);
    return buf;
}

static const char *s_fmt_rate(double v, char *buf, size_t n)
{
    if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

//  The implementations shown as columns of the table: zchan and raw always,
//  nng when it runs.
static int s_table_impls(const options_t *o)
{
    return o->run[IMPL_NNG] ? 3 : 2;
}

void perf_print_banner(const options_t *o)
{
    if (o->csv) {
        fprintf(g_out, "workload,transport,size,count,senders,receivers,baseline,repeat,zchan_msgs_per_s,"
                       "zchan_mb_per_s,raw_msgs_per_s,raw_mb_per_s,ratio,zchan_p50_us,zchan_p99_us,zchan_max_us,"
                       "raw_p50_us,raw_p99_us,raw_max_us,nng_msgs_per_s,nng_mb_per_s,ratio_nng,nng_p50_us,"
                       "nng_p99_us,nng_max_us,status\n");
        return;
    }
    fprintf(g_out, "zchan-perf: S=%d senders, R=%d receivers, anycast capacity %zu, baseline %s, %d run(s) per case",
            o->senders, o->receivers, o->capacity, o->baseline == BL_PROXY ? "proxy (same hops as zchan)" : "direct",
            o->repeat);
    fprintf(g_out, "%s\n", o->repeat > 1 ? ", medians" : "");
    fprintf(g_out, "zchan-perf: zchan anycast and broadcast channels %s%s\n",
            o->host_local ? "hosted by the receiving (anycast) or sending (broadcast) worker: one hop"
                          : "in this process's hub: the relay shape, two hops",
            o->rx_select ? "; receivers wait in zchan_select (receiver + idle timer)" : "");
#ifdef ZCHAN_PERF_NNG
    if (o->run[IMPL_NNG])
        fprintf(g_out, "zchan-perf: nng %s, same shape as raw; NNG_OPT_SENDBUF/RECVBUF %d messages, "
                       "NNG_OPT_RECVMAXSZ unlimited\n", nng_version(), o->nng_buf);
#endif
}

void perf_print_header(const options_t *o, workload_t wl)
{
    if (o->csv)
        return;
    int ni = s_table_impls(o);
    fprintf(g_out, "\n%-9s %-6s %7s %7s |", "workload", "trans", "size", "count");
    char h1[32], h2[32];
    for (int i = 0; i < ni; i++) {
        if (wl == WL_PINGPONG) {
            snprintf(h1, sizeof h1, "%s rt/s", perf_impl_names[i]);
            fprintf(g_out, " %10s %8s %8s %8s |", h1, "p50 us", "p99 us", "max us");
        } else {
            snprintf(h1, sizeof h1, "%s msg/s", perf_impl_names[i]);
            snprintf(h2, sizeof h2, "%s MB/s", perf_impl_names[i]);
            fprintf(g_out, " %11s %10s |", h1, h2);
        }
    }
    fprintf(g_out, " %9s", "zchan/raw");
    if (ni > 2)
        fprintf(g_out, " %9s", "zchan/nng");
    fprintf(g_out, "  status\n");
}

//  "ok", or every failed implementation's error.
static void s_status(const row_t *r, char *status, size_t n)
{
    snprintf(status, n, "ok");
    for (int i = 0; i < IMPL_N; i++)
        if (r->ran[i] && !r->ok[i]) {
            size_t used = strcmp(status, "ok") ? strlen(status) : 0;
            snprintf(status + used, n - used, "%sFAILED %s: %s", used ? "; " : "", perf_impl_names[i], r->err[i]);
        }
}

//  One implementation's CSV fields: rate and MB/s, or latency (pingpong).
static void s_csv_rate(const row_t *r, int i)
{
    if (r->ran[i] && r->ok[i])
        fprintf(g_out, ",%.1f,%.3f", r->rate[i], r->mb[i]);
    else
        fprintf(g_out, ",,");
}

static void s_csv_latency(workload_t wl, const row_t *r, int i)
{
    if (wl == WL_PINGPONG && r->ran[i] && r->ok[i])
        fprintf(g_out, ",%.1f,%.1f,%.1f", r->p50[i], r->p99[i], r->max[i]);
    else
        fprintf(g_out, ",,,");
}

static void s_csv_ratio(const row_t *r, int i)
{
    if (r->has_ratio[i])
        fprintf(g_out, ",%.4f", r->ratio[i]);
    else
        fprintf(g_out, ",");
}

//  Columns: see the header in perf_print_banner. zchan and raw first (as
//  before nng existed), then nng's group, then the status.
static void s_csv_row(const options_t *o, workload_t wl, transport_t tr, size_t size, long count, const row_t *r,
                      const char *status)
{
    fprintf(g_out, "%s,%s,%zu,%ld,%d,%d,%s,%d", perf_wl_names[wl], perf_tr_names[tr], size, count,
            wl == WL_PINGPONG ? 1 : o->senders, wl == WL_PINGPONG ? 1 : o->receivers,
            o->baseline == BL_PROXY ? "proxy" : "direct", o->repeat);
    s_csv_rate(r, IMPL_ZCHAN);
    s_csv_rate(r, IMPL_RAW);
    s_csv_ratio(r, IMPL_RAW);
    s_csv_latency(wl, r, IMPL_ZCHAN);
    s_csv_latency(wl, r, IMPL_RAW);
    s_csv_rate(r, IMPL_NNG);
    s_csv_ratio(r, IMPL_NNG);
    s_csv_latency(wl, r, IMPL_NNG);
    //  Quote the status: error messages may hold commas.
    fprintf(g_out, ",\"");
    for (const char *p = status; *p; p++) {
        if (*p == '"')
            fputc('"', g_out);
        fputc(*p, g_out);
    }
    fprintf(g_out, "\"\n");
}

static void s_table_row(const options_t *o, workload_t wl, transport_t tr, size_t size, long count, const row_t *r,
                        const char *status)
{
    int ni = s_table_impls(o);
    char sz[32], a[32];
    fprintf(g_out, "%-9s %-6s %7s %7ld |", perf_wl_names[wl], perf_tr_names[tr], s_fmt_size(size, sz, sizeof sz),
            count);
    for (int i = 0; i < ni; i++) {
        bool have = r->ran[i] && r->ok[i];
        if (wl == WL_PINGPONG && have)
            fprintf(g_out, " %10s %8.1f %8.1f %8.1f |", s_fmt_rate(r->rate[i], a, sizeof a), r->p50[i], r->p99[i],
                    r->max[i]);
        else if (wl == WL_PINGPONG)
            fprintf(g_out, " %10s %8s %8s %8s |", "-", "-", "-", "-");
        else if (have)
            fprintf(g_out, " %11s %10.2f |", s_fmt_rate(r->rate[i], a, sizeof a), r->mb[i]);
        else
            fprintf(g_out, " %11s %10s |", "-", "-");
    }
    for (int i = 1; i < ni; i++) {
        char ratio[32] = "-";
        if (r->has_ratio[i])
            snprintf(ratio, sizeof ratio, "%.3f", r->ratio[i]);
        fprintf(g_out, " %9s", ratio);
    }
    fprintf(g_out, "  %s\n", status);
}

void perf_print_row(const options_t *o, workload_t wl, transport_t tr, size_t size, long count, const row_t *r)
{
    char status[1700];
    s_status(r, status, sizeof status);
    if (o->csv)
        s_csv_row(o, wl, tr, size, count, r, status);
    else
        s_table_row(o, wl, tr, size, count, r, status);
    fflush(g_out);
}
