#include "hub/streams/flags.hpp"

#include <charconv>
#include <cstdint>

namespace hub::streams {

namespace {

constexpr std::string_view kUsage =
    R"(resumable streams ({prefix}/streams; docs/hub.md, "Resumable streams"):
  --stream-history-messages N  history kept per stream, in messages
                          (HUB_STREAM_HISTORY_MESSAGES; default 10000)
  --stream-history-bytes N     ... in payload bytes (HUB_STREAM_HISTORY_BYTES; default 16777216)
  --stream-history-seconds N   ... in age (HUB_STREAM_HISTORY_SECONDS; default 600)
  --stream-ack-window N        unacknowledged messages per acked subscription before it is
                          closed with 1008 (HUB_STREAM_ACK_WINDOW; default 1000)
  --stream-ack-window-bytes N  ... in payload bytes (HUB_STREAM_ACK_WINDOW_BYTES; default 4194304)
)";

std::optional<std::uint64_t> number(std::string_view text, std::uint64_t min, std::uint64_t max) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size() || value < min || value > max)
        return std::nullopt;
    return value;
}

struct Flag {
    const char* flag;
    const char* env;
    std::uint64_t min;
    std::uint64_t max;
    void (*apply)(StreamsOptions&, std::uint64_t);
};

constexpr std::uint64_t kMaxCount = 100'000'000;
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 40;

const Flag kFlags[] = {
    {"--stream-history-messages", "HUB_STREAM_HISTORY_MESSAGES", 1, kMaxCount,
     [](StreamsOptions& o, std::uint64_t v) { o.history.max_entries = static_cast<std::size_t>(v); }},
    {"--stream-history-bytes", "HUB_STREAM_HISTORY_BYTES", 1024, kMaxBytes,
     [](StreamsOptions& o, std::uint64_t v) { o.history.max_bytes = static_cast<std::size_t>(v); }},
    {"--stream-history-seconds", "HUB_STREAM_HISTORY_SECONDS", 1, 365ull * 86400,
     [](StreamsOptions& o, std::uint64_t v) { o.history.max_age = std::chrono::milliseconds(v * 1000); }},
    {"--stream-ack-window", "HUB_STREAM_ACK_WINDOW", 1, kMaxCount,
     [](StreamsOptions& o, std::uint64_t v) { o.ack_window_messages = static_cast<std::size_t>(v); }},
    {"--stream-ack-window-bytes", "HUB_STREAM_ACK_WINDOW_BYTES", 1024, kMaxBytes,
     [](StreamsOptions& o, std::uint64_t v) { o.ack_window_bytes = static_cast<std::size_t>(v); }},
};

}  // namespace

std::string_view flags_usage() { return kUsage; }

std::optional<std::string> take_flags(std::vector<std::string>& args, StreamsOptions& options,
                                      const std::function<const char*(const char*)>& getenv) {
    for (const auto& f : kFlags) {
        const char* value = getenv ? getenv(f.env) : nullptr;
        if (value == nullptr || *value == '\0') continue;
        const auto parsed = number(value, f.min, f.max);
        if (!parsed)
            return std::string("the environment variable ") + f.env + " must be a number from " + std::to_string(f.min) +
                   " to " + std::to_string(f.max);
        f.apply(options, *parsed);
    }
    std::vector<std::string> rest;
    rest.reserve(args.size());
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view arg = args[i];
        std::optional<std::string_view> inline_value;
        if (const auto eq = arg.find('='); eq != std::string_view::npos) {
            inline_value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        const Flag* found = nullptr;
        for (const auto& f : kFlags)
            if (arg == f.flag) found = &f;
        if (found == nullptr) {
            rest.push_back(args[i]);
            continue;
        }
        std::string_view value;
        if (inline_value) value = *inline_value;
        else if (i + 1 < args.size()) value = args[++i];
        else return std::string(found->flag) + " needs a value";
        const auto parsed = number(value, found->min, found->max);
        if (!parsed)
            return std::string(found->flag) + ": must be a number from " + std::to_string(found->min) + " to " +
                   std::to_string(found->max);
        found->apply(options, *parsed);
    }
    args = std::move(rest);
    return std::nullopt;
}

}  // namespace hub::streams
