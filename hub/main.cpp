// websock-hub: real-time channels over WebSocket, published to over HTTP. A drop-in
// replacement for aiows (same endpoints, payloads, answers and flags), on libwebsock.
//
//   websock-hub [--pwd PWD] [--usock PATH] [--host HOST] [--port PORT] [--reuse-addr 0|1]
//               [--reuse-port 0|1] [--url-prefix PREFIX] [--redis redis://HOST:PORT]
//               [--max-queue-bytes N] [--threads | --event-loops N] [-i channelstream.ini]
//               [channelstream flags]
//   websock-hub make-config      a commented example INI file on stdout
//
// Every flag can also come from the environment (HUB_PWD, HUB_USOCK, ...; a flag wins).
// Prints "listening on HOST:PORT" (or "listening on unix:PATH") once it accepts connections.
// SIGINT/SIGTERM: answer what is pending, close every client with 1001, exit 0.
// SIGHUP, or `websock-hub --restart PIDFILE`: zero-downtime restart (hub/restart.hpp).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "hub/aiows.hpp"
#include "hub/channelstream/config.hpp"
#include "hub/channelstream/module.hpp"
#include "hub/hub.hpp"
#include "hub/log.hpp"
#include "hub/restart.hpp"
#include "hub/restart_channel.hpp"
#include "hub/streams/flags.hpp"
#include "hub/streams/module.hpp"
#include "websock/malloc_tuning.hpp"

namespace {

constexpr std::string_view kUsage = R"(usage: websock-hub [options]

Real-time channels: subscribers connect with WebSocket to {prefix}/channel/NAME/, publishers
POST to {prefix}/channel/NAME/ or {prefix}/broadcast/ (the aiows API). The same process
speaks the channelstream API (/connect, /message, /ws, /listen, /admin/admin.json, ...),
configured by `-i FILE.ini`, CHANNELSTREAM_* variables and its own flags; `websock-hub
make-config` prints a commented example. docs/hub.md has it all.

options (each also from the environment variable in brackets; a flag wins):
  -h, --help              show this help and exit
  --pwd PWD               password needed to publish (HUB_PWD; prefer the variable: a flag
                          shows in the process list). Without one, anybody may publish.
  --usock PATH            listen on this unix socket instead of TCP (HUB_USOCK)
  --host HOST             address to listen on (HUB_HOST; default 127.0.0.1)
  --port PORT             port to listen on, 0 for any free one (HUB_PORT; default 8080)
  --reuse-addr 0|1        SO_REUSEADDR (HUB_REUSE_ADDR; default 1)
  --reuse-port 0|1        SO_REUSEPORT (HUB_REUSE_PORT; default 0)
  --url-prefix PREFIX     put every endpoint under PREFIX, e.g. /api (HUB_URL_PREFIX)
  --redis URL             publish through Redis, redis://HOST:PORT[/DB], so that several hub
                          nodes serve one set of channels (HUB_REDIS)
  --max-queue-bytes N     a subscriber this many bytes behind is closed with 1008
                          (HUB_MAX_QUEUE_BYTES; default 4194304)
  --threads               one thread per connection instead of event loops (HUB_THREADS=1)
  --event-loops N         how many event loops, each on its own thread; 0: one per core
                          (HUB_EVENT_LOOPS; default 1)
  --channel-rule RULE     a payload rule, 'PATTERN; types=json; max_bytes=4096;
                          required=user:string; max_depth=4' (repeatable; HUB_CHANNEL_RULES,
                          one rule per line). The first rule whose glob matches a channel
                          decides: flags, then the variable, then the INI file's
                          [channel:PATTERN] sections. A refused publish gets 413, 415 or 422.

zero-downtime restart (SIGHUP; docs/hub.md has the sequence):
  --pidfile PATH          write the pid here (atomically) once serving; a successor rewrites
                          it (HUB_PIDFILE)
  --drain-timeout S       after a restart's 1012, seconds the old process's clients get to
                          go (HUB_DRAIN_TIMEOUT; default 10)
  --ready-timeout S       seconds the new process gets to be ready, and again to take over;
                          past them it is killed and the old one serves on (HUB_READY_TIMEOUT;
                          default 30)
  websock-hub --restart PIDFILE
                          restart the hub whose pid PIDFILE holds: exit 0 once its successor
                          serves, 1 when the restart failed (the old process serves on)
A hub started with LISTEN_FDS=1 (systemd socket activation) serves that socket instead of
binding one.
)";

std::optional<std::uint64_t> parse_number(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
    return value;
}

std::optional<bool> parse_bool(std::string_view text) {
    if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
    if (text == "0" || text == "false" || text == "no" || text == "off") return false;
    return std::nullopt;
}

struct Setting {
    const char* flag;
    const char* env;
    bool (*apply)(hub::HubOptions&, std::string_view);
};

bool set_port(hub::HubOptions& o, std::string_view v) {
    const auto port = parse_number(v);
    if (!port || *port > 65535) return false;
    o.port = static_cast<std::uint16_t>(*port);
    return true;
}
bool set_reuse_addr(hub::HubOptions& o, std::string_view v) {
    const auto on = parse_bool(v);
    if (on) o.reuse_address = *on;
    return on.has_value();
}
bool set_reuse_port(hub::HubOptions& o, std::string_view v) {
    const auto on = parse_bool(v);
    if (on) o.reuse_port = *on;
    return on.has_value();
}
bool set_queue(hub::HubOptions& o, std::string_view v) {
    const auto bytes = parse_number(v);
    if (!bytes || *bytes < 1024) return false;
    o.max_subscriber_queue_bytes = *bytes;
    return true;
}
bool set_event_loops(hub::HubOptions& o, std::string_view v) {
    const auto loops = parse_number(v);
    if (!loops || *loops > 1024) return false;
    o.event_loops = *loops;
    return true;
}
bool set_seconds(websock::Milliseconds& target, std::string_view v) {
    const auto seconds = parse_number(v);
    if (!seconds || *seconds > 86400) return false;
    target = websock::Milliseconds(*seconds * 1000);
    return true;
}
bool set_threads(hub::HubOptions& o, std::string_view v) {
    const auto on = parse_bool(v);
    if (on) o.engine = *on ? websock::Engine::ThreadPerClient : websock::Engine::EventLoop;
    return on.has_value();
}

const Setting kSettings[] = {
    {"--pwd", "HUB_PWD", [](hub::HubOptions& o, std::string_view v) { o.password = v; return true; }},
    {"--usock", "HUB_USOCK", [](hub::HubOptions& o, std::string_view v) { o.unix_socket_path = v; return true; }},
    {"--host", "HUB_HOST", [](hub::HubOptions& o, std::string_view v) { o.host = v; return !v.empty(); }},
    {"--port", "HUB_PORT", set_port},
    {"--reuse-addr", "HUB_REUSE_ADDR", set_reuse_addr},
    {"--reuse-port", "HUB_REUSE_PORT", set_reuse_port},
    {"--url-prefix", "HUB_URL_PREFIX", [](hub::HubOptions& o, std::string_view v) { o.url_prefix = v; return true; }},
    {"--redis", "HUB_REDIS", [](hub::HubOptions& o, std::string_view v) { o.redis_url = v; return true; }},
    {"--max-queue-bytes", "HUB_MAX_QUEUE_BYTES", set_queue},
    {"--threads", "HUB_THREADS", set_threads},  // a bare flag: "--threads" alone means on
    {"--event-loops", "HUB_EVENT_LOOPS", set_event_loops},
    {"--pidfile", "HUB_PIDFILE", [](hub::HubOptions& o, std::string_view v) { o.pidfile = v; return !v.empty(); }},
    {"--drain-timeout", "HUB_DRAIN_TIMEOUT", [](hub::HubOptions& o, std::string_view v) { return set_seconds(o.drain_timeout, v); }},
    {"--ready-timeout", "HUB_READY_TIMEOUT",
     [](hub::HubOptions& o, std::string_view v) { return set_seconds(o.restart_ready_timeout, v) && o.restart_ready_timeout.count() > 0; }},
};

// The payload rules, in the order in which they are tried: --channel-rule flags (taken out
// of `args`), HUB_CHANNEL_RULES (one per line), then the INI file's [channel:PATTERN]
// sections. nullopt: go on; otherwise the exit code.
std::optional<int> read_payload_rules(std::vector<char*>& args, const hub::channelstream::ChannelstreamConfig& config,
                                      hub::PayloadRules& rules) {
    auto add = [&rules](std::string_view spec, std::string_view where) -> bool {
        if (const auto error = rules.add_spec(spec)) {
            fmt::print(stderr, "websock-hub: {}: {}\n", where, *error);
            return false;
        }
        return true;
    };
    std::vector<char*> kept;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (arg.rfind("--channel-rule=", 0) == 0) {
            if (!add(arg.substr(15), "--channel-rule")) return 2;
        } else if (arg == "--channel-rule") {
            if (i + 1 >= args.size()) {
                fmt::print(stderr, "websock-hub: --channel-rule needs a value\n");
                return 2;
            }
            if (!add(args[++i], "--channel-rule")) return 2;
        } else {
            kept.push_back(args[i]);
        }
    }
    args = std::move(kept);
    if (const char* variable = std::getenv("HUB_CHANNEL_RULES")) {
        std::string_view lines = variable;
        while (!lines.empty()) {
            const auto end = lines.find('\n');
            const auto line = lines.substr(0, end);
            if (line.find_first_not_of(" \t\r") != std::string_view::npos && !add(line, "HUB_CHANNEL_RULES")) return 2;
            lines = end == std::string_view::npos ? std::string_view{} : lines.substr(end + 1);
        }
    }
    for (const auto& section : config.channel_sections)
        if (const auto error = rules.add(section.pattern, section.settings)) {
            fmt::print(stderr, "websock-hub: [channel:{}]: {}\n", section.pattern, *error);
            return 2;
        }
    return std::nullopt;
}

// 0: go on; otherwise the exit code (0 after --help).
std::optional<int> read_settings(int argc, char** argv, hub::HubOptions& options) {
    for (const auto& setting : kSettings) {
        const char* value = std::getenv(setting.env);
        if (value == nullptr || *value == '\0') continue;
        if (!setting.apply(options, value)) {
            // Never echo the value: it may be the password.
            fmt::print(stderr, "websock-hub: the environment variable {} has a value that cannot be used\n", setting.env);
            return 2;
        }
    }
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            fmt::print("{}\n{}", kUsage, hub::streams::flags_usage());
            return 0;
        }
        std::optional<std::string_view> inline_value;  // --port=8080
        if (const auto eq = arg.find('='); arg.substr(0, 2) == "--" && eq != std::string_view::npos) {
            inline_value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        const Setting* found = nullptr;
        for (const auto& setting : kSettings)
            if (arg == setting.flag) found = &setting;
        if (found == nullptr) {
            fmt::print(stderr, "websock-hub: unknown option {}\n{}", arg, kUsage);
            return 2;
        }
        std::string_view value;
        if (inline_value) {
            value = *inline_value;
        } else if (arg == "--threads") {
            value = "1";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fmt::print(stderr, "websock-hub: {} needs a value\n", arg);
            return 2;
        }
        if (!found->apply(options, value)) {
            fmt::print(stderr, "websock-hub: {}: this value cannot be used\n", arg);
            return 2;
        }
    }
    return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == "make-config") {
        fmt::print("{}", hub::channelstream::example_config());
        return 0;
    }
    if (argc >= 2 && std::string_view(argv[1]).substr(0, 9) == "--restart") {
        const std::string_view arg = argv[1];
        const std::string pidfile = arg.size() > 10 && arg[9] == '=' ? std::string(arg.substr(10)) : argc >= 3 ? argv[2] : "";
        if (pidfile.empty() || (arg.size() > 9 && arg[9] != '=')) {
            fmt::print(stderr, "usage: websock-hub --restart PIDFILE\n");
            return 2;
        }
        // Twice the ready timeout (ready, then the takeover) and some.
        return hub::request_restart(pidfile, std::chrono::seconds(75));
    }
    // What a predecessor or systemd handed us: before any thread starts (it edits environ).
    const auto inherited = hub::restart::take_inherited();
    if (!inherited.error.empty()) {
        fmt::print(stderr, "websock-hub: {}\n", inherited.error);
        return 2;
    }
    // The channelstream settings first: its INI file (-i), CHANNELSTREAM_* variables and its
    // own flags are taken out of the arguments; the hub's flags are what is left.
    std::vector<std::string> args(argv + 1, argv + argc);
    auto channelstream = hub::channelstream::load_config(args, [](const char* name) { return std::getenv(name); });
    if (channelstream.error) {
        fmt::print(stderr, "websock-hub: {}\n", *channelstream.error);
        return 2;
    }
    hub::StreamsOptions streams;  // the --stream-... flags and HUB_STREAM_* variables come out next
    if (const auto error = hub::streams::take_flags(args, streams, [](const char* name) { return std::getenv(name); })) {
        fmt::print(stderr, "websock-hub: {}\n", *error);
        return 2;
    }
    std::vector<char*> hub_args{argv[0]};
    for (auto& arg : args) hub_args.push_back(arg.data());

    hub::HubOptions options;
    // host and port from a channelstream INI file are the lowest layer: HUB_* and flags win.
    if (channelstream.config.host) options.host = *channelstream.config.host;
    if (channelstream.config.port) options.port = *channelstream.config.port;
    if (const auto exit_code = read_payload_rules(hub_args, channelstream.config, options.payload_rules)) return *exit_code;
    if (const auto exit_code = read_settings(static_cast<int>(hub_args.size()), hub_args.data(), options)) return *exit_code;
    hub::log_add_secret(options.password);
    if (inherited.listen_fd >= 0) {  // serve it, and name it as it is, whatever the flags say
        options.listen_fd = inherited.listen_fd;
        options.unix_socket_path = inherited.unix_socket ? inherited.unix_path : "";
        if (!inherited.unix_socket) {
            options.host = inherited.host;
            options.port = inherited.port;
        }
    }

    // Freed big message buffers go back to the system (glibc's dynamic mmap threshold off):
    // memory returns to the baseline after big publishers and slow subscribers leave
    // (websock/malloc_tuning.hpp). Before any thread starts.
    websock::return_freed_memory_promptly();

    // SIGINT/SIGTERM are taken by one thread that waits for them, so that stop() runs as
    // ordinary code (modules answer pending requests, then the server closes clients). Block
    // them before any other thread starts, so that every thread inherits the mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);  // a restart (hub/restart.hpp)
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    // One descriptor per subscriber: take the hard limit of open files (often 1024 soft,
    // far more hard), as nginx does, rather than refuse connections at a thousand.
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }

    // Heap pages freed in the middle of the heap (below the mmap threshold) go back too: a
    // thread that trims after memory was freed (websock/malloc_tuning.hpp).
    websock::FreedMemoryTrimmer trimmer;
    hub::Hub hub{options};
    hub::AiowsOptions aiows;
    aiows.url_prefix = options.url_prefix;
    aiows.password = options.password;
    hub.add_module(std::make_unique<hub::AiowsModule>(std::move(aiows)));
    streams.url_prefix = options.url_prefix;
    streams.password = options.password;
    hub.add_module(std::make_unique<hub::StreamsModule>(std::move(streams)));
    hub.add_module(std::make_unique<hub::channelstream::ChannelstreamModule>(std::move(channelstream.config)));

    if (options.password.empty())
        fmt::print(stderr,
                   "websock-hub: WARNING: no publish password is set (--pwd or HUB_PWD): anybody who can reach this "
                   "port can publish to every channel\n");
    if (!hub.listen()) return 1;
    hub::Restarter restarter(hub, std::vector<std::string>(argv, argv + argc),
                             {options.pidfile, options.restart_ready_timeout, options.drain_timeout});
    if (!restarter.start(inherited.handover_fd)) return 1;  // a predecessor's takeover failed: it serves on

    std::thread signal_waiter([&hub, &restarter, stop_signals] {
        for (;;) {
            siginfo_t info{};
            if (sigwaitinfo(&stop_signals, &info) < 0) continue;  // EINTR
            if (info.si_signo == SIGHUP) {
                restarter.on_restart_signal(info);
                continue;
            }
            hub.stop();
            return;
        }
    });

    fmt::print("listening on {}\n", hub.address());
    std::fflush(stdout);
    const bool served = hub.serve_forever();
    // serve_forever() returned on a signal (the waiter is done) or on its own (a failure):
    // wake the waiter with a signal of its own so that it can be joined.
    pthread_kill(signal_waiter.native_handle(), SIGTERM);
    signal_waiter.join();
    restarter.finish();
    hub::log_info("stopped");
    return served ? 0 : 1;
}
