// bench/loadgen — websock's own WebSocket load generator (RFC 6455 client side).
//
// Single-threaded, epoll, level-triggered, no dependencies beyond libc (SHA-1 and base64 for
// the handshake are implemented here, so no OpenSSL). It opens N connections to
// ws://HOST:PORT/PATH, checks every handshake (101, Upgrade, Connection, Sec-WebSocket-Accept),
// then runs one mode:
//
//   throughput  every connection keeps --inflight masked messages of --size bytes in flight;
//               prints echoed messages per second over the measured window.
//   latency     a fixed total --rate of messages spread round-robin over the connections; each
//               payload carries its *scheduled* send time, and latency is measured from that
//               time, so a stalled server (or a stalled loadgen) cannot hide queueing delay
//               (no coordinated omission). Prints p50/p90/p99/p99.9/max in microseconds; the
//               JSON also has the same percentiles measured from the actual send time
//               (p*_from_send_us), whose gap to the first shows the loadgen's own stalls.
//   idle        opens the connections, sends one message on each and checks its echo, then
//               holds them for --duration seconds (for measuring the server's memory). With
//               --server-pid it also counts the server's descriptors (/proc/PID/fd) and the
//               machine's Slab and KernelStack (/proc/meminfo) before and after, per connection.
//
// --raw speaks plain TCP instead (against bench/peers/tcp_echo.cpp): no handshake, no frames,
// the same payload bytes, each message exactly --size bytes of the stream, checked the same
// way; closing is a half-close answered by the server's EOF. That is the ceiling every
// WebSocket server is compared with, like for like.
//
// Every mode runs --warmup seconds first; nothing from the warm-up is counted. With
// --server-pid the loadgen samples the server's CPU time (utime+stime, /proc/PID/stat) at the
// exact start and end of the measured window, and its VmRSS, so the caller gets server CPU
// per message without racing the window boundaries.
//
// Every echo is checked: opcode (text, or binary with --binary), length, per-connection
// sequence number (echoes must come back in order) and every filler byte. Frames are parsed
// from a per-connection buffer, so frames split across reads (or many frames in one read, or
// fragmented messages) are handled. Any mismatch makes the exit status 3.
//
// Output: one JSON line (machine-readable) and one human line on stdout; diagnostics on
// stderr. Exit status: 0 ok, 1 usage, 2 could not connect every connection, 3 echo/protocol
// errors or lost messages in throughput/idle mode.
//
// Bounded by construction: loopback addresses only, --duration <= 600 s, the connect phase
// and the final drain and close each have their own deadline, and the process always ends.
#include "bench/loadgen/loadgen.hpp"

int main(int argc, char** argv) {
    using namespace loadgen;
    const Options o = parse_args(argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    // Room for the sockets: raise the soft limit on open files to the hard one.
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rlim_t(o.connections) + 16) {
        std::fprintf(stderr, "loadgen: open-file limit %llu is too low for %d connections\n", (unsigned long long)rl.rlim_cur, o.connections);
        return 2;
    }
    LoadGen lg(o);
    return lg.run();
}
