// bench/peers/peer_common.hpp — what every C++ peer server of the benchmarks shares: its
// command line and the line that tells bench/run.sh, fanout.sh and selftest.sh it is ready.
//
//   PEER [--host 127.0.0.1] [--port] PORT [peer-specific flags]   (PORT 0 picks a free port)
//
// Header-only and plain C++17: the WebSocket++ peers are built as C++17 (see bench/bench.mk).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

namespace bench_peer {

struct Args {
    std::string host = "127.0.0.1";
    int port = -1;
};

// Parses --host and --port (or a bare PORT). A peer with flags of its own passes `extra`,
// which is offered every other argument (with the index, so it can take a value) and returns
// false for one it does not know. Exits with the usage line on any error.
inline Args parse_args(int argc, char** argv, const char* extra_usage = "",
                       const std::function<bool(int& i, int argc, char** argv)>& extra = nullptr) {
    Args a;
    bool bad = false;
    for (int i = 1; i < argc && !bad; ++i) {
        if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) a.host = argv[++i];
        else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) a.port = std::atoi(argv[++i]);
        else if (extra && extra(i, argc, argv)) continue;
        else if (argv[i][0] != '-') a.port = std::atoi(argv[i]);
        else bad = true;
    }
    if (bad || a.port < 0 || a.port > 65535) {
        std::fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port] PORT%s%s\n", argv[0], *extra_usage ? " " : "", extra_usage);
        std::exit(1);
    }
    return a;
}

// The scripts wait for exactly this line (and read the port from it).
inline void announce_listening(const std::string& host, unsigned port) {
    std::printf("listening on %s:%u\n", host.c_str(), port);
    std::fflush(stdout);
}

}  // namespace bench_peer
