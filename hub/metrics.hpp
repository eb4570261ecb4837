// Metrics: the hub's counters and gauges, served as Prometheus text at GET {prefix}/metrics.
//
// Built on Debian's prometheus-cpp core (the registry, Counter, Gauge and TextSerializer; no
// HTTP exposer: the hub serves the text itself on its own port). Modules add their own
// metrics with counter()/gauge() and refresh values that live elsewhere (a registry's
// channel count, the bus's state) from an on_scrape() hook, which runs just before each
// scrape is written.
//
// Threads: every member is safe from any thread. Counters and gauges are atomics: increment
// them on any hot path (one per publish, not one per delivery, where that is easy).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

namespace hub {

class Metrics {
    // First, so that it exists before the references below are bound to its metrics.
    std::shared_ptr<prometheus::Registry> registry_;

public:
    Metrics();
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    /// The counter with this name and labels, made on first use (the same arguments give the
    /// same counter). Names follow Prometheus: "hub_..._total" for counters.
    prometheus::Counter& counter(const std::string& name, const std::string& help, const prometheus::Labels& labels = {});
    prometheus::Gauge& gauge(const std::string& name, const std::string& help, const prometheus::Labels& labels = {});

    /// Run `refresh` before every scrape (under the scrape lock, one scrape at a time): set
    /// gauges, or counters through set_counter(), from state kept elsewhere.
    void on_scrape(std::function<void()> refresh);

    /// Raise a counter to `total` (a counter only goes up; a lower total is ignored).
    static void set_counter(prometheus::Counter& counter, double total);

    /// The whole exposition in Prometheus text format 0.0.4.
    std::string render();

    // --- the hub's own metrics, shared by every module ---
    prometheus::Counter& slow_subscriber_disconnects;  ///< clients closed with 1008: outbound queue full
    prometheus::Counter& http_requests;                ///< plain HTTP requests answered by the hub or a module

private:
    std::mutex scrape_mutex_;
    std::vector<std::function<void()>> refreshers_;
};

/// The Content-Type of render()'s text.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace hub
