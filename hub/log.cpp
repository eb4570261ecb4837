#include "hub/log.hpp"

#include <cstdio>
#include <mutex>
#include <vector>

namespace hub {

namespace {

std::mutex& log_mutex() {
    static std::mutex mutex;
    return mutex;
}

std::vector<std::string>& secrets() {
    static std::vector<std::string> list;
    return list;
}

std::string_view level_prefix(LogLevel level) {
    switch (level) {
        case LogLevel::Info: return "";
        case LogLevel::Warning: return "warning: ";
        case LogLevel::Error: return "error: ";
    }
    return "";
}

}  // namespace

void log_add_secret(std::string secret) {
    if (secret.empty()) return;
    std::lock_guard lock(log_mutex());
    secrets().push_back(std::move(secret));
}

void log_line(LogLevel level, std::string_view message) noexcept {
    try {
        std::string line = fmt::format("websock-hub: {}{}\n", level_prefix(level), message);
        std::lock_guard lock(log_mutex());
        for (const auto& secret : secrets()) {
            for (std::size_t at = line.find(secret); at != std::string::npos; at = line.find(secret, at + 3))
                line.replace(at, secret.size(), "***");
        }
        std::fwrite(line.data(), 1, line.size(), stderr);
        std::fflush(stderr);
    } catch (...) {
        // Logging must never take the process down (out of memory while formatting).
    }
}

}  // namespace hub
