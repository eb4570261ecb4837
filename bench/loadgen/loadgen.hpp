// bench/loadgen/loadgen.hpp — what the load generator's files share: options, the byte
// buffer, the payload layout, one connection's state, the counters, and the LoadGen class.
// What the loadgen does and how it is bounded: bench/loadgen/main.cpp.
//
// Files: options.cpp (command line), proc.cpp (server, machine and kernel samples from /proc),
// websocket.cpp (handshake, SHA-1/base64, framing), connection.cpp (sockets, epoll, echo
// checks), modes.cpp (connect phase and the modes), report.cpp (JSON and human lines).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace loadgen {

// ---- time -------------------------------------------------------------------------------

inline std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000ull + std::uint64_t(ts.tv_nsec);
}

inline double cpu_self_s() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- PRNG -------------------------------------------------------------------------------
// Masks and handshake nonces come from xoshiro256** seeded once from getrandom(). RFC 6455
// asks for masks from a strong entropy source so that a hostile page cannot predict them;
// this is a benchmark client on loopback, and a fast PRNG keeps mask generation off the
// profile. Do not copy it into a browser-facing client.
struct Xoshiro256 {
    std::uint64_t s[4];
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    explicit Xoshiro256(std::uint64_t seed) {
        for (auto& v : s) {  // splitmix64 to spread the seed
            seed += 0x9e3779b97f4a7c15ull;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            v = z ^ (z >> 31);
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
        const std::uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
};

// ---- SHA-1 and base64, for Sec-WebSocket-Accept (websocket.cpp) ------------------------------

std::string sha1(std::string_view msg);
std::string base64(std::string_view in);

// ---- byte buffer ------------------------------------------------------------------------
// [off, len) holds unconsumed bytes; grows without zero-filling.
struct Buf {
    std::unique_ptr<std::uint8_t[]> p;
    std::size_t off = 0, len = 0, cap = 0;
    std::size_t size() const { return len - off; }
    const std::uint8_t* data() const { return p.get() + off; }
    void consume(std::size_t n) {
        off += n;
        if (off == len) off = len = 0;
    }
    // Make room for at least n more bytes at the end; returns the write pointer.
    std::uint8_t* reserve(std::size_t n) {
        if (cap - len >= n) return p.get() + len;
        if (off > 0 && cap - size() >= n && off >= size()) {  // compact when cheap
            std::memmove(p.get(), p.get() + off, size());
            len -= off;
            off = 0;
            return p.get() + len;
        }
        std::size_t ncap = std::max<std::size_t>(cap * 2, 4096);
        while (ncap - size() < n) ncap *= 2;
        auto np = std::make_unique_for_overwrite<std::uint8_t[]>(ncap);
        if (size()) std::memcpy(np.get(), p.get() + off, size());
        len -= off;
        off = 0;
        p = std::move(np);
        cap = ncap;
        return p.get() + len;
    }
    void commit(std::size_t n) { len += n; }
    void release() { p.reset(); off = len = cap = 0; }
};

// ---- options ------------------------------------------------------------------------------

enum class Mode { Throughput, Latency, Idle };

struct Options {
    std::string host = "127.0.0.1";
    int port = 0;
    std::string path = "/";
    Mode mode = Mode::Throughput;
    int connections = 100;
    int inflight = 8;
    std::size_t size = 32;
    double duration = 10;
    double warmup = 1;
    double rate = 20000;
    bool binary = false;
    int server_pid = 0;
    double connect_timeout = 10;
    double drain = 3;
    int connect_batch = 64;
    bool idle_echo = true;
    bool raw = false;   // plain TCP: the same payloads without framing or handshake
    bool spin = false;  // never sleep in epoll: our own wake-ups stay out of the latencies
    std::string label;
};

[[noreturn]] void usage(const char* msg);
Options parse_args(int argc, char** argv);
const char* mode_name(Mode m);

// ---- server sampling (/proc) ---------------------------------------------------------------

struct ProcSample {
    bool ok = false;
    double cpu_s = 0;  // utime + stime of the whole process (all threads, dead ones included)
    long rss_kb = -1;
    long threads = -1;
    long fds = -1;  // open descriptors (/proc/PID/fd), when asked for: 10,000 entries cost a few ms
};

ProcSample sample_proc(int pid, bool count_fds = false);

// The whole machine's CPU time (all CPUs), from the first line of /proc/stat: busy (not idle,
// not iowait) and steal, in seconds. Lets the report say how much of the machine *other*
// processes used during the window: this is a shared machine, and a run next to a compiler
// is not a clean run.
struct MachineSample {
    bool ok = false;
    double busy_s = 0, steal_s = 0;
};

MachineSample sample_machine();

// Kernel memory of the whole machine (/proc/meminfo): what sockets, epoll items and threads'
// stacks cost outside every process's RSS. Machine-wide, so the idle mode's deltas include
// this loadgen's own sockets (the same for every server) and anything else that ran meanwhile.
struct KernelSample {
    bool ok = false;
    long slab_kb = -1, kernel_stack_kb = -1;
};

KernelSample sample_kernel();

// ---- payload ------------------------------------------------------------------------------
// Layout (size >= 24): [0,12) per-connection sequence number, 12 lowercase hex digits;
// [12,24) timestamp in ns since the loadgen's epoch, 12 hex digits (the scheduled send time
// in latency mode, the actual send time otherwise); [24,size) filler that depends on the
// connection and the sequence number, so a mixed-up echo is caught. Text payloads are ASCII
// (valid UTF-8); binary filler covers all 256 byte values.

constexpr std::size_t kHeader = 24;

inline void put_hex12(std::uint8_t* p, std::uint64_t v) {
    static const char* hex = "0123456789abcdef";
    for (int i = 11; i >= 0; --i) {
        p[i] = std::uint8_t(hex[v & 15]);
        v >>= 4;
    }
}

inline bool get_hex12(const std::uint8_t* p, std::uint64_t& out) {
    std::uint64_t v = 0;
    for (int i = 0; i < 12; ++i) {
        const std::uint8_t c = p[i];
        std::uint64_t d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return false;
        v = (v << 4) | d;
    }
    out = v;
    return true;
}

// ---- connections --------------------------------------------------------------------------

enum class St { Idle, Connecting, Handshake, Open, Closing, Closed, Failed };

struct Conn {
    int fd = -1;
    std::uint32_t id = 0;
    St st = St::Idle;
    std::string accept;  // the Sec-WebSocket-Accept we expect
    Buf in, out;
    bool epollout = false;
    // Fragmented message being reassembled.
    std::vector<std::uint8_t> frag;
    std::uint8_t frag_op = 0;
    bool in_frag = false;
    std::uint64_t sent = 0;   // next sequence number to send
    std::uint64_t recvd = 0;  // next sequence number expected back
    int attempts = 0;
    bool close_sent = false;
    std::uint32_t slot = 0;  // latency mode: position in the round-robin schedule
    std::deque<std::uint64_t> sent_at;  // latency mode: actual send times of unanswered messages
};

struct Stats {
    std::uint64_t sent = 0, received = 0;
    std::uint64_t window_echoes = 0;  // echoes received between the two samples of the window
    std::uint64_t mismatches = 0, protocol_errors = 0, server_closes = 0, io_errors = 0;
    std::uint64_t pings = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t clean_closes = 0;
    std::uint64_t max_send_lag_ns = 0;  // latency mode: how late the loadgen sent vs schedule
    std::vector<std::uint64_t> lat_ns;  // latency mode: one entry per measured message
    std::vector<std::uint64_t> svc_ns;  // the same, measured from the actual send time: what
                                        // the latency would look like *with* coordinated
                                        // omission; the gap to lat_ns shows loadgen stalls
    std::uint64_t lat_unanswered = 0;
};

// What the modes measured, handed to the report.
struct Measured {
    ProcSample before, s0, s1, after_drain;  // server: before connecting, window start/end, after the drain
    MachineSample m0, m1;                   // the whole machine at the window's edges
    double c0 = 0, c1 = 0;                  // this process's CPU seconds at the window's edges
    double connect_s = 0;
    std::uint64_t unanswered = 0;
    bool drained = true;
    KernelSample k0, k1;  // idle mode: before connecting, and at the end of the hold
};

class LoadGen {
public:
    explicit LoadGen(const Options& o) : o_(o), rng_(seed()) {
        conns_.resize(std::size_t(o.connections));
        for (std::size_t i = 0; i < conns_.size(); ++i) conns_[i].id = std::uint32_t(i);
        text_pattern_.resize(o.size + 26);
        for (std::size_t i = 0; i < text_pattern_.size(); ++i) text_pattern_[i] = std::uint8_t('a' + i % 26);
        bin_pattern_.resize(o.size + 256);
        for (std::size_t i = 0; i < bin_pattern_.size(); ++i) bin_pattern_[i] = std::uint8_t(i * 167 + 13);
        scratch_.resize(o.size);
        epfd_ = epoll_create1(EPOLL_CLOEXEC);
        if (epfd_ < 0) die("epoll_create1");
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(std::uint16_t(o.port));
        if (inet_pton(AF_INET, o.host == "localhost" ? "127.0.0.1" : o.host.c_str(), &sa.sin_addr) != 1)
            usage("--host must be an IPv4 loopback address such as 127.0.0.1");
        if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127) usage("--host must be a loopback address (127.0.0.0/8)");
        addr_ = sa;
        epoch_ = now_ns();
    }

    int run();  // modes.cpp


private:
    static std::uint64_t seed() {
        std::uint64_t s = 0;
        if (getrandom(&s, sizeof s, 0) != sizeof s) s = now_ns() ^ std::uint64_t(getpid());
        return s;
    }
    [[noreturn]] static void die(const char* what) {
        std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
        std::exit(2);
    }

    // Timestamps in payloads are relative to epoch_ (fits 48 bits for 78 hours).
    std::uint64_t rel(std::uint64_t t) const { return t - epoch_; }

    void start_connect(Conn& c);
    void fail(Conn& c, const char* why);
    void finish(Conn& c);
    void set_epollout(Conn& c, bool on);
    void on_event(Conn& c, std::uint32_t ev, std::uint64_t now);
    void on_readable(Conn& c, std::uint64_t now);
    void parse_handshake(Conn& c, std::uint64_t now);
    void parse_frames(Conn& c, std::uint64_t now);
    void parse_stream(Conn& c, std::uint64_t now);  // frames, or fixed-size raw messages
    void on_message(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n, std::uint64_t now);
    void flush(Conn& c);
    void send_frame(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n);
    void send_data(Conn& c, std::uint64_t ts_rel);
    void send_close(Conn& c, std::uint16_t code);
    void poll(std::uint64_t deadline_ns, std::uint64_t max_wait_ns);
    bool pending_echoes() const;
    void close_all();
    int report(const Measured& r);  // report.cpp: prints the results, returns the exit status
    void note_open() { ++open_; }
    // Latency mode: scheduled send time of global message k (absolute ns), and of message
    // seq on the connection in schedule slot `slot`.
    std::uint64_t due(std::uint64_t k) const { return t0_ + std::uint64_t(double(k) * 1e9 / o_.rate); }
    std::uint64_t due_of(const Conn& c, std::uint64_t seq) const { return due(seq * slots_ + c.slot); }

    const Options& o_;
    Xoshiro256 rng_;
    std::vector<Conn> conns_;
    std::vector<std::uint8_t> text_pattern_, bin_pattern_, scratch_;
    int epfd_ = -1;
    sockaddr_in addr_{};
    std::uint64_t epoch_ = 0;
    std::size_t next_connect_ = 0;
    int connecting_ = 0;
    int open_ = 0;
    std::vector<std::uint32_t> retry_;
    // Window [win_start_, win_end_) in absolute ns; sending stops at win_end_.
    std::uint64_t win_start_ = UINT64_MAX, win_end_ = UINT64_MAX;
    bool sending_ = false;  // throughput: refill the pipeline on each echo
    // Echoes are counted between the two /proc samples that bracket the window, and rates use
    // the time between those samples, so CPU and messages always cover the same interval
    // (even when this process is descheduled across a window edge).
    bool counting_ = false;
    std::uint64_t t_s0_ = 0, t_s1_ = 0;
    std::uint64_t t0_ = 0;     // start of the load (after the connect phase)
    std::uint64_t slots_ = 1;  // latency mode: connections in the schedule
    std::vector<std::uint32_t> dirty_;
    Stats st_;
};

}  // namespace loadgen
