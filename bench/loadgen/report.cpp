// bench/loadgen/report.cpp — the JSON line and the human line, and the exit status.
#include "bench/loadgen/loadgen.hpp"

namespace loadgen {

namespace {

double pct(std::vector<std::uint64_t>& v, double q) {  // v sorted; nearest-rank
    if (v.empty()) return 0;
    std::size_t idx = std::size_t(q * double(v.size()));
    if (idx >= v.size()) idx = v.size() - 1;
    return double(v[idx]) / 1000.0;
}

}  // namespace

int LoadGen::report(const Measured& r) {
    const auto& [before, s0, s1, after_drain, m0, m1, c0, c1, connect_s, unanswered, drained, k0, k1] = r;
    const double window_s = t_s1_ > t_s0_ ? double(t_s1_ - t_s0_) / 1e9 : o_.duration;
    const double server_cpu = (s0.ok && s1.ok) ? s1.cpu_s - s0.cpu_s : -1;
    const double msgs = double(st_.window_echoes);
    const double rate = msgs / window_s;
    const double cpu_us_per_msg = (server_cpu >= 0 && msgs > 0) ? server_cpu * 1e6 / msgs : -1;
    const double client_cpu_pct = o_.mode == Mode::Idle ? 0 : (c1 - c0) / window_s * 100.0;
    const int opened = o_.connections - int(st_.connect_failures);
    // CPU that neither the server nor this loadgen used during the window, in % of one CPU.
    double other_pct = -1, steal_pct = -1;
    if (m0.ok && m1.ok && o_.mode != Mode::Idle) {
        const double ours = (c1 - c0) + (server_cpu >= 0 ? server_cpu : 0);
        other_pct = std::max(0.0, (m1.busy_s - m0.busy_s - ours) / window_s * 100.0);
        steal_pct = (m1.steal_s - m0.steal_s) / window_s * 100.0;
    }

    std::string json = "{\"mode\":\"";
    json += mode_name(o_.mode);
    json += "\"";
    char tmp[512];
    auto add = [&](const char* k, double v, const char* fmt = "%.3f") {
        std::snprintf(tmp, sizeof tmp, fmt, v);
        json += ",\"";
        json += k;
        json += "\":";
        json += tmp;
    };
    if (!o_.label.empty()) json += ",\"label\":\"" + o_.label + "\"";
    add("connections", o_.connections, "%.0f");
    add("opened", opened, "%.0f");
    add("size", double(o_.size), "%.0f");
    json += o_.binary ? ",\"binary\":true" : ",\"binary\":false";
    json += o_.raw ? ",\"raw\":true" : ",\"raw\":false";
    add("connect_s", connect_s);
    add("warmup_s", o_.warmup);
    add("duration_s", o_.duration);
    add("sent", double(st_.sent), "%.0f");
    add("received", double(st_.received), "%.0f");
    add("unanswered", double(unanswered), "%.0f");
    add("mismatches", double(st_.mismatches), "%.0f");
    add("protocol_errors", double(st_.protocol_errors), "%.0f");
    add("server_closes", double(st_.server_closes), "%.0f");
    add("io_errors", double(st_.io_errors), "%.0f");
    add("connect_failures", double(st_.connect_failures), "%.0f");
    add("clean_closes", double(st_.clean_closes), "%.0f");
    add("pings", double(st_.pings), "%.0f");
    std::string human;
    if (o_.mode == Mode::Throughput) {
        add("inflight", o_.inflight, "%.0f");
        add("window_echoes", msgs, "%.0f");
        add("msgs_per_s", rate, "%.1f");
        add("server_cpu_s", server_cpu);
        add("server_cpu_us_per_msg", cpu_us_per_msg, "%.4f");
        add("client_cpu_pct", client_cpu_pct, "%.1f");
        add("other_cpu_pct", other_pct, "%.1f");
        add("steal_pct", steal_pct, "%.1f");
        std::snprintf(tmp, sizeof tmp, "throughput: %.0f msg/s (%d conns x %d in flight, %zu B)%s", rate, opened, o_.inflight, o_.size,
                      cpu_us_per_msg >= 0 ? "" : "");
        human = tmp;
        if (cpu_us_per_msg >= 0) {
            std::snprintf(tmp, sizeof tmp, ", server CPU %.3f us/msg (%.0f%% of a core)", cpu_us_per_msg, server_cpu / window_s * 100);
            human += tmp;
        }
        std::snprintf(tmp, sizeof tmp, ", loadgen CPU %.0f%%", client_cpu_pct);
        human += tmp;
        if (other_pct >= 0) {
            std::snprintf(tmp, sizeof tmp, ", other processes %.0f%%", other_pct);
            human += tmp;
        }
    } else if (o_.mode == Mode::Latency) {
        auto& v = st_.lat_ns;
        std::sort(v.begin(), v.end());
        auto& sv = st_.svc_ns;
        std::sort(sv.begin(), sv.end());
        double mean = 0;
        for (auto x : v) mean += double(x);
        mean = v.empty() ? 0 : mean / double(v.size()) / 1000.0;
        add("rate_target", o_.rate, "%.1f");
        add("rate_achieved", msgs / window_s, "%.1f");
        add("samples", double(v.size()), "%.0f");
        add("p50_us", pct(v, 0.50), "%.1f");
        add("p90_us", pct(v, 0.90), "%.1f");
        add("p99_us", pct(v, 0.99), "%.1f");
        add("p999_us", pct(v, 0.999), "%.1f");
        add("max_us", v.empty() ? 0 : double(v.back()) / 1000.0, "%.1f");
        add("mean_us", mean, "%.1f");
        add("max_send_lag_us", double(st_.max_send_lag_ns) / 1000.0, "%.1f");
        add("p50_from_send_us", pct(sv, 0.50), "%.1f");
        add("p99_from_send_us", pct(sv, 0.99), "%.1f");
        add("p999_from_send_us", pct(sv, 0.999), "%.1f");
        add("max_from_send_us", sv.empty() ? 0 : double(sv.back()) / 1000.0, "%.1f");
        add("server_cpu_s", server_cpu);
        add("server_cpu_us_per_msg", cpu_us_per_msg, "%.4f");
        add("client_cpu_pct", client_cpu_pct, "%.1f");
        add("other_cpu_pct", other_pct, "%.1f");
        add("steal_pct", steal_pct, "%.1f");
        std::snprintf(tmp, sizeof tmp,
                      "latency @ %.0f msg/s over %d conns (%zu B): p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us "
                      "(%zu samples, %" PRIu64 " unanswered; from the actual send: p50 %.1f us, p99 %.1f us; loadgen sent up to %.0f us "
                      "late, other processes %.0f%%)",
                      o_.rate, opened, o_.size, pct(v, 0.5), pct(v, 0.9), pct(v, 0.99), pct(v, 0.999),
                      v.empty() ? 0 : double(v.back()) / 1000.0, v.size(), unanswered, pct(sv, 0.5), pct(sv, 0.99),
                      double(st_.max_send_lag_ns) / 1000.0, other_pct);
        human = tmp;
    } else {
        add("rss_before_kb", double(before.rss_kb), "%.0f");
        add("rss_kb", double(s1.rss_kb), "%.0f");
        add("rss_after_drain_kb", double(after_drain.rss_kb), "%.0f");
        add("threads", double(s1.threads), "%.0f");
        add("rss_per_conn_kb", (s1.rss_kb >= 0 && before.rss_kb >= 0 && opened > 0) ? double(s1.rss_kb - before.rss_kb) / opened : -1, "%.2f");
        const bool have_fds = s1.fds >= 0 && before.fds >= 0 && opened > 0;
        add("fds_before", double(before.fds), "%.0f");
        add("fds", double(s1.fds), "%.0f");
        add("fds_per_conn", have_fds ? double(s1.fds - before.fds) / opened : -1, "%.3f");
        const bool have_kernel = k0.ok && k1.ok && opened > 0;
        add("slab_delta_kb", have_kernel ? double(k1.slab_kb - k0.slab_kb) : -1, "%.0f");
        add("kernel_stack_delta_kb", have_kernel ? double(k1.kernel_stack_kb - k0.kernel_stack_kb) : -1, "%.0f");
        add("slab_per_conn_b", have_kernel ? double(k1.slab_kb - k0.slab_kb) * 1024 / opened : -1, "%.0f");
        add("kernel_stack_per_conn_b", have_kernel ? double(k1.kernel_stack_kb - k0.kernel_stack_kb) * 1024 / opened : -1, "%.0f");
        std::snprintf(tmp, sizeof tmp, "idle: %d connections held %.1f s", opened, o_.warmup + o_.duration);
        human = tmp;
        if (s1.rss_kb >= 0) {
            std::snprintf(tmp, sizeof tmp, ", server VmRSS %.1f MiB (%.1f MiB before, %.1f KiB/conn), %ld threads", double(s1.rss_kb) / 1024,
                          double(before.rss_kb) / 1024, double(s1.rss_kb - before.rss_kb) / opened, s1.threads);
            human += tmp;
        }
        if (have_fds) {
            std::snprintf(tmp, sizeof tmp, ", %.2f descriptors/conn", double(s1.fds - before.fds) / opened);
            human += tmp;
        }
        if (have_kernel) {
            std::snprintf(tmp, sizeof tmp, "; kernel (whole machine, both ends): Slab %+.0f B/conn, KernelStack %+.0f B/conn",
                          double(k1.slab_kb - k0.slab_kb) * 1024 / opened, double(k1.kernel_stack_kb - k0.kernel_stack_kb) * 1024 / opened);
            human += tmp;
        }
    }
    json += "}";
    std::printf("%s\n%s\n", json.c_str(), human.c_str());
    std::fflush(stdout);

    if (st_.connect_failures > 0) return 2;
    if (st_.mismatches || st_.protocol_errors || st_.server_closes || st_.io_errors) return 3;
    if (o_.mode != Mode::Latency && !drained) return 3;
    return 0;
}

}  // namespace loadgen
