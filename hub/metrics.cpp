#include "hub/metrics.hpp"

#include <sstream>

#include <prometheus/text_serializer.h>

namespace hub {

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      slow_subscriber_disconnects(counter("hub_slow_subscriber_disconnects_total",
                                          "Subscribers closed with 1008 because their outbound queue passed its limit")),
      http_requests(counter("hub_http_requests_total", "Plain HTTP requests received (publishes, metrics, long polls)")) {}

Metrics::~Metrics() = default;

prometheus::Counter& Metrics::counter(const std::string& name, const std::string& help, const prometheus::Labels& labels) {
    // The registry merges families of the same name, and a family returns the existing
    // metric for labels it already has: both are thread-safe.
    return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
}

prometheus::Gauge& Metrics::gauge(const std::string& name, const std::string& help, const prometheus::Labels& labels) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add(labels);
}

void Metrics::on_scrape(std::function<void()> refresh) {
    std::lock_guard lock(scrape_mutex_);
    refreshers_.push_back(std::move(refresh));
}

void Metrics::set_counter(prometheus::Counter& counter, double total) {
    const double delta = total - counter.Value();
    if (delta > 0) counter.Increment(delta);
}

std::string Metrics::render() {
    std::lock_guard lock(scrape_mutex_);
    for (const auto& refresh : refreshers_) refresh();
    std::ostringstream out;
    prometheus::TextSerializer{}.Serialize(out, registry_->Collect());
    return out.str();
}

}  // namespace hub
