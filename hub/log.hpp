// The hub's log: one line per event on stderr, never interleaved between threads, and never
// carrying a secret (the publish password is blanked out of every line, whatever wrote it).
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace hub {

enum class LogLevel { Info, Warning, Error };

/// Write one line ("websock-hub: warning: ..."). Safe from any thread.
void log_line(LogLevel level, std::string_view message) noexcept;

/// A secret that must never reach the log: every later line has it replaced by "***".
/// Safe from any thread; call it as soon as the secret is known. Empty: nothing to hide.
void log_add_secret(std::string secret);

template <typename... Args>
void log_info(fmt::format_string<Args...> format, Args&&... args) {
    log_line(LogLevel::Info, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warning(fmt::format_string<Args...> format, Args&&... args) {
    log_line(LogLevel::Warning, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void log_error(fmt::format_string<Args...> format, Args&&... args) {
    log_line(LogLevel::Error, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace hub
