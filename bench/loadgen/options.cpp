// bench/loadgen/options.cpp — the command line (see main.cpp for what each mode does).
#include "bench/loadgen/loadgen.hpp"

namespace loadgen {

[[noreturn]] void usage(const char* msg) {
    if (msg) std::fprintf(stderr, "loadgen: %s\n", msg);
    std::fprintf(stderr,
                 "usage: loadgen --port PORT [--host 127.0.0.1] [--path /]\n"
                 "         --mode throughput|latency|idle [--connections N] [--size BYTES]\n"
                 "         [--inflight K] (throughput)  [--rate MSG_PER_S] (latency)\n"
                 "         [--duration S] [--warmup S] [--binary] [--server-pid PID]\n"
                 "         [--connect-timeout S] [--drain S] [--connect-batch N]\n"
                 "         [--no-idle-echo] [--spin] [--raw] [--label NAME]\n");
    std::exit(1);
}

double parse_num(const char* name, const char* s, double lo, double hi) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        std::fprintf(stderr, "loadgen: %s must be a number in [%g, %g], got '%s'\n", name, lo, hi, s);
        std::exit(1);
    }
    return v;
}

Options parse_args(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-h" || a == "--help") usage(nullptr);
        if (a == "--binary") { o.binary = true; continue; }
        if (a == "--no-idle-echo") { o.idle_echo = false; continue; }
        if (a == "--spin") { o.spin = true; continue; }
        if (a == "--raw") { o.raw = true; continue; }
        if (i + 1 >= argc) usage(("missing value for " + std::string(a)).c_str());
        const char* v = argv[++i];
        if (a == "--host") o.host = v;
        else if (a == "--port") o.port = int(parse_num("--port", v, 1, 65535));
        else if (a == "--path") o.path = v;
        else if (a == "--mode") {
            const std::string_view m = v;
            if (m == "throughput") o.mode = Mode::Throughput;
            else if (m == "latency") o.mode = Mode::Latency;
            else if (m == "idle") o.mode = Mode::Idle;
            else usage("--mode is throughput, latency or idle");
        } else if (a == "--connections") o.connections = int(parse_num("--connections", v, 1, 50000));
        else if (a == "--inflight") o.inflight = int(parse_num("--inflight", v, 1, 4096));
        else if (a == "--size") o.size = std::size_t(parse_num("--size", v, 24, 64.0 * 1024 * 1024));
        else if (a == "--duration") o.duration = parse_num("--duration", v, 0.1, 600);
        else if (a == "--warmup") o.warmup = parse_num("--warmup", v, 0, 120);
        else if (a == "--rate") o.rate = parse_num("--rate", v, 1, 5e6);
        else if (a == "--server-pid") o.server_pid = int(parse_num("--server-pid", v, 1, 1 << 30));
        else if (a == "--connect-timeout") o.connect_timeout = parse_num("--connect-timeout", v, 0.1, 120);
        else if (a == "--drain") o.drain = parse_num("--drain", v, 0, 60);
        else if (a == "--connect-batch") o.connect_batch = int(parse_num("--connect-batch", v, 1, 10000));
        else if (a == "--label") o.label = v;
        else usage(("unknown option " + std::string(a)).c_str());
    }
    if (o.port == 0) usage("--port is required");
    if (o.path.empty() || o.path[0] != '/') usage("--path must start with /");
    return o;
}

const char* mode_name(Mode m) {
    switch (m) {
    case Mode::Throughput: return "throughput";
    case Mode::Latency: return "latency";
    case Mode::Idle: return "idle";
    }
    return "?";
}

}  // namespace loadgen
