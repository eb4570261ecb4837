// The channelstream API's settings: channelstream 0.7.1's INI keys (section [channelstream])
// and the hub's own, read from an INI file, then the environment, then command-line flags —
// each later source wins:
//
//   defaults  <  INI file  <  CHANNELSTREAM_<KEY> variables  <  --KEY=VALUE flags
//
// The INI file is parsed by inih (Debian's libinih1: linked if the program links -linih, else
// loaded at first use, so building needs no inih headers); like Python's configparser, a value
// may go on over indented continuation lines (allow_posting_from = 127.0.0.1,\n    10.0.0.2).
// A [hub] section is kept as raw key/value pairs for the hub program's own settings.
//
// Plain data and pure functions: call from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hub::channelstream {

struct ChannelstreamConfig {
    // ---- channelstream 0.7.1's keys (same names, same defaults unless said) ----
    std::string secret = "secret";              ///< signs server API requests; change it
    std::string admin_user = "admin";           ///< /admin and /admin/admin.json (sign-in form, HTTP Basic)
    std::string admin_secret = "admin_secret";  ///< the admin password; change it
    /// Who may call the server API (exact addresses; "0.0.0.0" allows everyone). channelstream
    /// allows 127.0.0.1 only; ::1 is loopback too, so it is allowed by default here.
    std::vector<std::string> allow_posting_from{"127.0.0.1", "::1"};
    /// Empty: every response says Access-Control-Allow-Origin: *. Otherwise only requests whose
    /// Origin contains one of these domains get it (channelstream's substring rule).
    std::vector<std::string> allow_cors;
    /// On: a signature older than signature_max_age is refused. Off: only the MAC is checked
    /// (a signature is still required), as in channelstream.
    bool validate_requests = true;
    std::optional<std::string> host;       ///< where to listen, when the config gives it
    std::optional<std::uint16_t> port;
    std::string log_level = "INFO";
    /// The admin sign-in cookie: signed with cookie_secret (empty: with secret), marked Secure
    /// when http_scheme is https or enforce_https is on.
    bool enforce_https = false;
    std::string cookie_secret;
    std::string http_scheme;
    // Accepted so that a channelstream ini loads unchanged; they change nothing here.
    bool debug = false;
    bool demo = false;
    std::string signature_checker;

    // ---- timings (channelstream's values) ----
    /// A long poll with nothing to deliver is answered [] after this (wake_connections_after).
    std::chrono::seconds wake_connections_after{5};
    /// A connection neither attached nor heard from for this long is removed (channelstream: 15 s).
    std::chrono::seconds gc_conns_after{15};
    /// A user without connections and inactive this long is forgotten (channelstream: 1 day).
    std::chrono::seconds gc_users_after{86400};
    /// Every attached WebSocket gets the text [] this often (channelstream: 5 s).
    std::chrono::seconds heartbeat_interval{5};

    // ---- beyond channelstream ----
    std::chrono::seconds signature_max_age{60};         ///< itsdangerous max_age with validate_requests
    std::chrono::seconds signature_max_future_skew{30}; ///< refuse signatures dated further ahead
    /// Refuse the itsdangerous scheme: only X-Channelstream-Signature (HMAC-SHA256 over method,
    /// target, body and time, each accepted once) is let in.
    bool require_strong_signatures = false;
    /// Limits. history_size asked above max_history_size is cut to it; a detached connection
    /// keeps at most max_pending_frames undelivered messages (the oldest go first).
    std::size_t max_history_size = 1000;
    std::size_t max_pending_frames = 100;
    std::string url_prefix;  ///< every channelstream path under it ("/cs" -> /cs/connect)

    /// The [hub] section, key/value as written, for the hub program's own settings.
    std::vector<std::pair<std::string, std::string>> hub_settings;
    /// [channel:PATTERN] sections (the hub's payload rules, hub/payload_rules.hpp), in file
    /// order, each with its key/value pairs as written.
    struct ChannelSection {
        std::string pattern;
        std::vector<std::pair<std::string, std::string>> settings;
    };
    std::vector<ChannelSection> channel_sections;
};

/// Set one key (an INI key, also accepted with '-' for '_'). On failure returns the reason
/// (unknown key, unusable value); the value is never echoed (it may be a secret).
std::optional<std::string> set_config_value(ChannelstreamConfig& config, std::string_view key, std::string_view value);

/// Apply an INI text: [channelstream] keys (unknown ones are an error), [hub] pairs and
/// [channel:PATTERN] sections kept, other sections ignored. Returns the first error ("line 4: ...").
std::optional<std::string> apply_ini_text(ChannelstreamConfig& config, std::string_view text);
std::optional<std::string> apply_ini_file(ChannelstreamConfig& config, const std::string& path);

/// CHANNELSTREAM_<KEY> for every key (CHANNELSTREAM_SECRET, CHANNELSTREAM_ALLOW_POSTING_FROM, ...).
using GetEnv = std::function<const char*(const char* name)>;
std::optional<std::string> apply_environment(ChannelstreamConfig& config, const GetEnv& getenv);

/// Take the flags this config knows out of `args` (--secret=x, --secret x, --allow-posting-from
/// ...), leaving the others in place for the caller. --host, --port and --url-prefix are left
/// too: they are the hub's own flags. Returns the first error.
std::optional<std::string> apply_flags(ChannelstreamConfig& config, std::vector<std::string>& args);

struct ConfigLoad {
    ChannelstreamConfig config;
    std::optional<std::string> error;
};
/// The whole order: defaults, the INI file (`-i PATH`/`--ini PATH` among `args`, else the
/// CHANNELSTREAM_INI variable, else none), the environment, then the flags. Known flags are
/// removed from `args`.
ConfigLoad load_config(std::vector<std::string>& args, const GetEnv& getenv);

/// A commented example config with every key at its default (for `websock-hub make-config`).
std::string example_config();

}  // namespace hub::channelstream
