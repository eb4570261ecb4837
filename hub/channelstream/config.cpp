#include "hub/channelstream/config.hpp"

#include <ini.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

namespace hub::channelstream {

namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return text;
}

/// pyramid's asbool, which channelstream uses, plus the explicit false words.
std::optional<bool> parse_bool(std::string_view text) {
    const std::string word = lower(trim(text));
    if (word == "t" || word == "true" || word == "y" || word == "yes" || word == "on" || word == "1") return true;
    if (word == "f" || word == "false" || word == "n" || word == "no" || word == "off" || word == "0" || word.empty())
        return false;
    return std::nullopt;
}

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
    text = trim(text);
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

/// "a, b,\n  c" -> {a, b, c}: commas and line breaks separate, blanks are dropped.
std::vector<std::string> parse_list(std::string_view text) {
    std::vector<std::string> items;
    std::string current;
    auto flush = [&] {
        const std::string_view item = trim(current);
        if (!item.empty()) items.emplace_back(item);
        current.clear();
    };
    for (char c : text) {
        if (c == ',' || c == '\n') flush();
        else current += c;
    }
    flush();
    return items;
}

using Setter = std::optional<std::string> (*)(ChannelstreamConfig&, std::string_view);

struct Key {
    const char* name;
    Setter set;
    const char* example;  ///< the value written by example_config()
    const char* help;     ///< its comment there
    bool commented = false;  ///< written commented out (no default of its own)
};

std::optional<std::string> bad(const char* what) { return std::string(what); }

template <std::string ChannelstreamConfig::*Member>
std::optional<std::string> set_string(ChannelstreamConfig& c, std::string_view v) {
    c.*Member = std::string(trim(v));
    return std::nullopt;
}
template <bool ChannelstreamConfig::*Member>
std::optional<std::string> set_bool(ChannelstreamConfig& c, std::string_view v) {
    const auto on = parse_bool(v);
    if (!on) return bad("expects true or false");
    c.*Member = *on;
    return std::nullopt;
}
template <std::chrono::seconds ChannelstreamConfig::*Member, std::uint64_t Min, std::uint64_t Max>
std::optional<std::string> set_seconds(ChannelstreamConfig& c, std::string_view v) {
    const auto n = parse_unsigned(v);
    if (!n || *n < Min || *n > Max) return "expects whole seconds from " + std::to_string(Min) + " to " + std::to_string(Max);
    c.*Member = std::chrono::seconds{static_cast<std::int64_t>(*n)};
    return std::nullopt;
}
template <std::size_t ChannelstreamConfig::*Member, std::uint64_t Min, std::uint64_t Max>
std::optional<std::string> set_size(ChannelstreamConfig& c, std::string_view v) {
    const auto n = parse_unsigned(v);
    if (!n || *n < Min || *n > Max) return "expects a number from " + std::to_string(Min) + " to " + std::to_string(Max);
    c.*Member = static_cast<std::size_t>(*n);
    return std::nullopt;
}
template <std::vector<std::string> ChannelstreamConfig::*Member>
std::optional<std::string> set_list(ChannelstreamConfig& c, std::string_view v) {
    c.*Member = parse_list(v);
    return std::nullopt;
}

std::optional<std::string> set_secret(ChannelstreamConfig& c, std::string_view v) {
    if (trim(v).empty()) return bad("must not be empty");
    c.secret = std::string(trim(v));
    return std::nullopt;
}
std::optional<std::string> set_host(ChannelstreamConfig& c, std::string_view v) {
    if (trim(v).empty()) return bad("must not be empty");
    c.host = std::string(trim(v));
    return std::nullopt;
}
std::optional<std::string> set_port(ChannelstreamConfig& c, std::string_view v) {
    const auto n = parse_unsigned(v);
    if (!n || *n > 65535) return bad("expects a port number from 0 to 65535");
    c.port = static_cast<std::uint16_t>(*n);
    return std::nullopt;
}
std::optional<std::string> set_url_prefix(ChannelstreamConfig& c, std::string_view v) {
    std::string prefix(trim(v));
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (!prefix.empty() && prefix.front() != '/') prefix.insert(prefix.begin(), '/');
    c.url_prefix = std::move(prefix);
    return std::nullopt;
}

constexpr std::uint64_t kDay = 86400;

const Key kKeys[] = {
    {"secret", set_secret, "secret", "Signs the server API's requests (itsdangerous TimestampSigner). Change it."},
    {"admin_user", set_string<&ChannelstreamConfig::admin_user>, "admin", "User name for /admin and /admin/admin.json (the sign-in form, or HTTP Basic)."},
    {"admin_secret", set_string<&ChannelstreamConfig::admin_secret>, "admin_secret", "The admin password. Change it."},
    {"allow_posting_from", set_list<&ChannelstreamConfig::allow_posting_from>, "127.0.0.1,\n                     ::1",
     "Addresses allowed to call the server API, comma- or line-separated; 0.0.0.0 allows all."},
    {"allow_cors", set_list<&ChannelstreamConfig::allow_cors>, "",
     "Empty: Access-Control-Allow-Origin: * everywhere. Else only for an Origin containing one of these."},
    {"validate_requests", set_bool<&ChannelstreamConfig::validate_requests>, "true",
     "Refuse signatures older than signature_max_age (off: any age, the MAC is still checked)."},
    {"host", set_host, "127.0.0.1", "Where the hub listens (its --host flag wins).", true},
    {"port", set_port, "8000", "The port it listens on (its --port flag wins).", true},
    {"log_level", set_string<&ChannelstreamConfig::log_level>, "INFO", "Accepted for channelstream compatibility."},
    {"debug", set_bool<&ChannelstreamConfig::debug>, "false", "Accepted for channelstream compatibility; no effect."},
    {"demo", set_bool<&ChannelstreamConfig::demo>, "false", "Accepted for channelstream compatibility; no effect."},
    {"enforce_https", set_bool<&ChannelstreamConfig::enforce_https>, "false",
     "Marks the admin sign-in cookie Secure (terminate TLS with --tls-cert or a proxy)."},
    {"cookie_secret", set_string<&ChannelstreamConfig::cookie_secret>, "",
     "Signs the admin sign-in cookie; empty: secret does."},
    {"http_scheme", set_string<&ChannelstreamConfig::http_scheme>, "", "https: the admin sign-in cookie is marked Secure."},
    {"signature_checker", set_string<&ChannelstreamConfig::signature_checker>, "",
     "Accepted for channelstream compatibility; see require_strong_signatures."},
    {"wake_connections_after", set_seconds<&ChannelstreamConfig::wake_connections_after, 1, 60>, "5",
     "Seconds a long poll waits before answering [] when nothing came (at most 60: the hub answers 503 to a request held 120 s)."},
    {"gc_conns_after", set_seconds<&ChannelstreamConfig::gc_conns_after, 1, kDay>, "15",
     "Seconds a connection may be detached and silent before it is removed (with presence 'parted')."},
    {"gc_users_after", set_seconds<&ChannelstreamConfig::gc_users_after, 1, 365 * kDay>, "86400",
     "Seconds a user without connections is remembered (state, private messages)."},
    {"heartbeat_interval", set_seconds<&ChannelstreamConfig::heartbeat_interval, 1, 3600>, "5",
     "Seconds between the [] heartbeats sent to every WebSocket."},
    {"signature_max_age", set_seconds<&ChannelstreamConfig::signature_max_age, 1, kDay>, "60",
     "Seconds a request signature stays valid when validate_requests is on."},
    {"signature_max_future_skew", set_seconds<&ChannelstreamConfig::signature_max_future_skew, 0, 3600>, "30",
     "Seconds a signature may be dated ahead of this machine's clock (channelstream: unlimited)."},
    {"require_strong_signatures", set_bool<&ChannelstreamConfig::require_strong_signatures>, "false",
     "Accept only X-Channelstream-Signature (HMAC-SHA256 over method, path, body, time; single use)."},
    {"max_history_size", set_size<&ChannelstreamConfig::max_history_size, 0, 1000000>, "1000",
     "The largest history_size a channel may ask for."},
    {"max_pending_frames", set_size<&ChannelstreamConfig::max_pending_frames, 1, 100000>, "100",
     "Messages kept for a detached connection until it re-attaches (the oldest are dropped)."},
    {"url_prefix", set_url_prefix, "", "Serve every channelstream path under this prefix (/cs -> /cs/connect)."},
};

const Key* find_key(std::string_view name) {
    std::string normalised = lower(trim(name));
    std::replace(normalised.begin(), normalised.end(), '-', '_');
    for (const Key& key : kKeys)
        if (normalised == key.name) return &key;
    return nullptr;
}

struct IniContext {
    ChannelstreamConfig* config;
    std::optional<std::string> error;
    std::string last_section;
    std::string last_key;
    std::string last_value;  ///< the joined value of a key continued over several lines
};

int on_ini_entry(void* user, const char* section, const char* name, const char* value) {
    auto* context = static_cast<IniContext*>(user);
    const std::string section_name = lower(section);
    if (section_name == "hub") {
        context->config->hub_settings.emplace_back(name, value);
        return 1;
    }
    if (section_name.rfind("channel:", 0) == 0) {
        // The pattern keeps its case: channel names are case-sensitive.
        const std::string pattern = std::string(section).substr(8);
        auto& sections = context->config->channel_sections;
        if (sections.empty() || sections.back().pattern != pattern) sections.push_back({pattern, {}});
        sections.back().settings.emplace_back(name, value);
        return 1;
    }
    if (section_name != "channelstream") return 1;
    const Key* key = find_key(name);
    if (key == nullptr) {
        context->error = std::string("unknown key '") + name + "' in [channelstream]";
        return 0;
    }
    // inih calls again with the same name for each continuation line: join them.
    std::string joined = value;
    if (context->last_section == section_name && context->last_key == key->name) {
        joined = context->last_value + "\n" + value;
    }
    context->last_section = section_name;
    context->last_key = key->name;
    context->last_value = joined;
    if (auto error = key->set(*context->config, joined)) {
        context->error = std::string(key->name) + ": " + *error;
        return 0;
    }
    return 1;
}

}  // namespace

std::optional<std::string> set_config_value(ChannelstreamConfig& config, std::string_view key_name, std::string_view value) {
    const Key* key = find_key(key_name);
    if (key == nullptr) return "unknown setting '" + std::string(key_name) + "'";
    if (auto error = key->set(config, value)) return std::string(key->name) + ": " + *error;
    return std::nullopt;
}

std::optional<std::string> apply_ini_text(ChannelstreamConfig& config, std::string_view text) {
    IniContext context{&config, std::nullopt, {}, {}, {}};
    const std::string terminated(text);  // inih wants a NUL-terminated string
    const int line = ini_parse_string(terminated.c_str(), on_ini_entry, &context);
    if (line == 0) return std::nullopt;
    if (line < 0) return std::string("cannot parse the INI text");
    return "line " + std::to_string(line) + ": " + context.error.value_or("not a 'key = value' line, a [section] or a comment");
}

std::optional<std::string> apply_ini_file(ChannelstreamConfig& config, const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return "cannot read " + path;
    std::ostringstream text;
    text << file.rdbuf();
    if (auto error = apply_ini_text(config, text.str())) return path + ": " + *error;
    return std::nullopt;
}

std::optional<std::string> apply_environment(ChannelstreamConfig& config, const GetEnv& getenv) {
    for (const Key& key : kKeys) {
        std::string variable = "CHANNELSTREAM_" + std::string(key.name);
        for (char& c : variable) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const char* value = getenv(variable.c_str());
        if (value == nullptr) continue;
        if (auto error = key.set(config, value)) return variable + ": " + *error;
    }
    return std::nullopt;
}

std::optional<std::string> apply_flags(ChannelstreamConfig& config, std::vector<std::string>& args) {
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (!arg.starts_with("--")) {
            rest.push_back(arg);
            continue;
        }
        std::string_view name = std::string_view(arg).substr(2);
        std::optional<std::string> value;
        if (const auto eq = name.find('='); eq != std::string_view::npos) {
            value = std::string(name.substr(eq + 1));
            name = name.substr(0, eq);
        }
        const Key* key = find_key(name);
        // --host, --port and --url-prefix are the hub's own flags (the INI keys of those names
        // only fill in for them).
        const bool hub_flag = key != nullptr && (std::string_view(key->name) == "host" || std::string_view(key->name) == "port" ||
                                                 std::string_view(key->name) == "url_prefix");
        if (key == nullptr || hub_flag) {
            rest.push_back(arg);
            continue;
        }
        if (!value) {
            if (i + 1 >= args.size()) return "--" + std::string(name) + " needs a value";
            value = args[++i];
        }
        if (auto error = key->set(config, *value)) return "--" + std::string(name) + ": " + *error;
    }
    args = std::move(rest);
    return std::nullopt;
}

ConfigLoad load_config(std::vector<std::string>& args, const GetEnv& getenv) {
    ConfigLoad load;
    std::optional<std::string> ini_path;
    std::vector<std::string> rest;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "-i" || arg == "--ini") {
            if (i + 1 >= args.size()) {
                load.error = arg + " needs a file name";
                return load;
            }
            ini_path = args[++i];
        } else if (arg.starts_with("--ini=")) {
            ini_path = arg.substr(6);
        } else {
            rest.push_back(arg);
        }
    }
    args = std::move(rest);
    if (!ini_path) {
        if (const char* from_env = getenv("CHANNELSTREAM_INI"); from_env != nullptr && *from_env != '\0') ini_path = from_env;
    }
    if (ini_path) {
        if ((load.error = apply_ini_file(load.config, *ini_path))) return load;
    }
    if ((load.error = apply_environment(load.config, getenv))) return load;
    load.error = apply_flags(load.config, args);
    return load;
}

std::string example_config() {
    std::string out =
        "# websock-hub: the channelstream API's settings (channelstream 0.7.1's keys and a few more).\n"
        "# Precedence: this file < CHANNELSTREAM_<KEY> environment variables < --key=value flags.\n"
        "# Every key is shown at its default.\n"
        "\n[channelstream]\n";
    for (const Key& key : kKeys) {
        out += "# ";
        out += key.help;
        out += "\n";
        if (key.commented) out += "# ";
        out += key.name;
        out += " = ";
        out += key.example;
        out += "\n\n";
    }
    out +=
        "[hub]\n"
        "# The hub program's own settings (the same names as its flags, without the dashes), e.g.\n"
        "# redis = redis://127.0.0.1:6379\n"
        "\n"
        "# Payload rules: what a channel accepts, checked once per publish by every API (aiows,\n"
        "# channelstream, streams). One section per channel name or glob pattern; the first\n"
        "# section that matches a channel decides (--channel-rule flags and HUB_CHANNEL_RULES\n"
        "# come before these). A refused publish gets 413, 415 or 422 and the rule it broke.\n"
        "# [channel:chat.*]\n"
        "# types = json                        ; text, json, binary (what the publisher declares)\n"
        "# max_bytes = 4096\n"
        "# max_depth = 4                       ; JSON nesting\n"
        "# required = user:string, text:string ; JSON object keys: string number integer boolean object array null any\n";
    return out;
}

}  // namespace hub::channelstream
