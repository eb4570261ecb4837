// loadgen: websock's own WebSocket load generator (RFC 6455 client side).
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
//               holds them for --duration seconds (for measuring the server's memory).
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

namespace {

// ---- time -------------------------------------------------------------------------------

std::uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000ull + std::uint64_t(ts.tv_nsec);
}

double cpu_self_s() {
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

// ---- SHA-1 and base64, for Sec-WebSocket-Accept ---------------------------------------------

std::string sha1(std::string_view msg) {
    std::uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    std::string data(msg);
    const std::uint64_t bitlen = std::uint64_t(msg.size()) * 8;
    data.push_back(char(0x80));
    while (data.size() % 64 != 56) data.push_back('\0');
    for (int i = 7; i >= 0; --i) data.push_back(char((bitlen >> (i * 8)) & 0xff));
    auto rol = [](std::uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
    for (std::size_t off = 0; off < data.size(); off += 64) {
        std::uint32_t w[80];
        for (int i = 0; i < 16; ++i) {
            const auto* p = reinterpret_cast<const unsigned char*>(data.data() + off + std::size_t(i) * 4);
            w[i] = (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
        }
        for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; ++i) {
            std::uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            const std::uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    std::string out(20, '\0');
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 4; ++j) out[std::size_t(i * 4 + j)] = char((h[i] >> (24 - 8 * j)) & 0xff);
    return out;
}

std::string base64(std::string_view in) {
    static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
        out += tbl[(v >> 18) & 63]; out += tbl[(v >> 12) & 63]; out += tbl[(v >> 6) & 63]; out += tbl[v & 63];
    }
    if (i + 1 == in.size()) {
        const std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
        out += tbl[(v >> 18) & 63]; out += tbl[(v >> 12) & 63]; out += "==";
    } else if (i + 2 == in.size()) {
        const std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8);
        out += tbl[(v >> 18) & 63]; out += tbl[(v >> 12) & 63]; out += tbl[(v >> 6) & 63]; out += '=';
    }
    return out;
}

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
    bool spin = false;  // never sleep in epoll: our own wake-ups stay out of the latencies
    std::string label;
};

[[noreturn]] void usage(const char* msg) {
    if (msg) std::fprintf(stderr, "loadgen: %s\n", msg);
    std::fprintf(stderr,
                 "usage: loadgen --port PORT [--host 127.0.0.1] [--path /]\n"
                 "         --mode throughput|latency|idle [--connections N] [--size BYTES]\n"
                 "         [--inflight K] (throughput)  [--rate MSG_PER_S] (latency)\n"
                 "         [--duration S] [--warmup S] [--binary] [--server-pid PID]\n"
                 "         [--connect-timeout S] [--drain S] [--connect-batch N]\n"
                 "         [--no-idle-echo] [--spin] [--label NAME]\n");
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

// ---- server sampling (/proc) ---------------------------------------------------------------

struct ProcSample {
    bool ok = false;
    double cpu_s = 0;  // utime + stime of the whole process (all threads, dead ones included)
    long rss_kb = -1;
    long threads = -1;
};

ProcSample sample_proc(int pid) {
    ProcSample s;
    if (pid <= 0) return s;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (FILE* f = std::fopen(path, "r")) {
        char buf[4096];
        const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[n] = '\0';
        // Fields after the last ')': state(3) ppid(4) ... utime(14) stime(15).
        if (const char* p = std::strrchr(buf, ')')) {
            p += 2;
            unsigned long long ut = 0, st = 0;
            int field = 3;
            while (*p && field < 16) {
                if (field == 14) ut = std::strtoull(p, nullptr, 10);
                if (field == 15) st = std::strtoull(p, nullptr, 10);
                while (*p && *p != ' ') ++p;
                while (*p == ' ') ++p;
                ++field;
            }
            s.cpu_s = double(ut + st) / double(sysconf(_SC_CLK_TCK));
            s.ok = true;
        }
    }
    std::snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (FILE* f = std::fopen(path, "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, f)) {
            if (std::strncmp(line, "VmRSS:", 6) == 0) s.rss_kb = std::strtol(line + 6, nullptr, 10);
            if (std::strncmp(line, "Threads:", 8) == 0) s.threads = std::strtol(line + 8, nullptr, 10);
        }
        std::fclose(f);
    }
    return s;
}

// The whole machine's CPU time (all CPUs), from the first line of /proc/stat: busy (not idle,
// not iowait) and steal, in seconds. Lets the report say how much of the machine *other*
// processes used during the window: this is a shared machine, and a run next to a compiler
// is not a clean run.
struct MachineSample {
    bool ok = false;
    double busy_s = 0, steal_s = 0;
};

MachineSample sample_machine() {
    MachineSample m;
    FILE* f = std::fopen("/proc/stat", "r");
    if (!f) return m;
    unsigned long long v[10] = {};
    const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                              &v[6], &v[7], &v[8], &v[9]);
    std::fclose(f);
    if (n < 8) return m;
    const double tick = double(sysconf(_SC_CLK_TCK));
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    m.busy_s = double(v[0] + v[1] + v[2] + v[5] + v[6]) / tick;
    m.steal_s = double(v[7]) / tick;
    m.ok = true;
    return m;
}

// ---- payload ------------------------------------------------------------------------------
// Layout (size >= 24): [0,12) per-connection sequence number, 12 lowercase hex digits;
// [12,24) timestamp in ns since the loadgen's epoch, 12 hex digits (the scheduled send time
// in latency mode, the actual send time otherwise); [24,size) filler that depends on the
// connection and the sequence number, so a mixed-up echo is caught. Text payloads are ASCII
// (valid UTF-8); binary filler covers all 256 byte values.

constexpr std::size_t kHeader = 24;

void put_hex12(std::uint8_t* p, std::uint64_t v) {
    static const char* hex = "0123456789abcdef";
    for (int i = 11; i >= 0; --i) {
        p[i] = std::uint8_t(hex[v & 15]);
        v >>= 4;
    }
}

bool get_hex12(const std::uint8_t* p, std::uint64_t& out) {
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

    int run();

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
    void on_message(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n, std::uint64_t now);
    void flush(Conn& c);
    void send_frame(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n);
    void send_data(Conn& c, std::uint64_t ts_rel);
    void send_close(Conn& c, std::uint16_t code);
    void poll(std::uint64_t deadline_ns, std::uint64_t max_wait_ns);
    bool pending_echoes() const;
    void close_all();
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

void LoadGen::start_connect(Conn& c) {
    ++c.attempts;
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) die("socket");
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.st = St::Connecting;
    ++connecting_;
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) < 0 && errno != EINPROGRESS) {
        fail(c, "connect");
        return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = c.id;
    c.epollout = true;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) < 0) die("epoll_ctl");
}

void LoadGen::fail(Conn& c, const char* why) {
    const int err = errno;
    const bool was_connecting = c.st == St::Connecting || c.st == St::Handshake;
    if (c.fd >= 0) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
    }
    c.in.release();
    c.out.release();
    if (was_connecting) {
        --connecting_;
        // A refused or reset connect (full backlog under a burst) is retried a few times.
        if (c.attempts < 4 && (err == ECONNREFUSED || err == ECONNRESET || err == ETIMEDOUT || err == EAGAIN)) {
            c.st = St::Idle;
            retry_.push_back(c.id);
            return;
        }
        ++st_.connect_failures;
        std::fprintf(stderr, "loadgen: connection %u failed during %s: %s\n", c.id, why, err ? std::strerror(err) : "protocol");
    } else if (c.st == St::Open) {
        --open_;
        ++st_.io_errors;
        std::fprintf(stderr, "loadgen: connection %u: %s: %s\n", c.id, why, err ? std::strerror(err) : "error");
    } else if (c.st == St::Closing) {
        --open_;
    }
    c.st = St::Failed;
}

void LoadGen::finish(Conn& c) {  // after a clean close handshake
    if (c.fd >= 0) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
    }
    c.in.release();
    c.out.release();
    if (c.st == St::Open || c.st == St::Closing) --open_;
    c.st = St::Closed;
}

void LoadGen::set_epollout(Conn& c, bool on) {
    if (c.epollout == on || c.fd < 0) return;
    epoll_event ev{};
    ev.events = on ? std::uint32_t(EPOLLIN | EPOLLOUT) : std::uint32_t(EPOLLIN);
    ev.data.u32 = c.id;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.epollout = on;
}

void LoadGen::flush(Conn& c) {
    while (c.out.size() > 0 && c.fd >= 0) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out.consume(std::size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_epollout(c, true);
            return;
        }
        fail(c, "send");
        return;
    }
    if (c.st != St::Connecting) set_epollout(c, false);
}

void LoadGen::send_frame(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n) {
    std::uint8_t* w = c.out.reserve(n + 14);
    std::size_t h = 0;
    w[h++] = std::uint8_t(0x80 | op);
    if (n < 126) {
        w[h++] = std::uint8_t(0x80 | n);
    } else if (n <= 0xffff) {
        w[h++] = 0x80 | 126;
        w[h++] = std::uint8_t(n >> 8);
        w[h++] = std::uint8_t(n);
    } else {
        w[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; --i) w[h++] = std::uint8_t(std::uint64_t(n) >> (i * 8));
    }
    const std::uint32_t key = std::uint32_t(rng_.next());
    std::memcpy(w + h, &key, 4);
    std::uint8_t mk[4];
    std::memcpy(mk, &key, 4);
    h += 4;
    std::uint8_t* d = w + h;
    std::size_t i = 0;
    std::uint64_t k8;
    std::uint8_t kb[8] = {mk[0], mk[1], mk[2], mk[3], mk[0], mk[1], mk[2], mk[3]};
    std::memcpy(&k8, kb, 8);
    for (; i + 8 <= n; i += 8) {
        std::uint64_t v;
        std::memcpy(&v, p + i, 8);
        v ^= k8;
        std::memcpy(d + i, &v, 8);
    }
    for (; i < n; ++i) d[i] = p[i] ^ mk[i & 3];
    c.out.commit(h + n);
}

void LoadGen::send_data(Conn& c, std::uint64_t ts_rel) {
    std::uint8_t* p = scratch_.data();
    const std::uint64_t seq = c.sent++;
    put_hex12(p, seq);
    put_hex12(p + 12, ts_rel);
    const std::size_t fill = o_.size - kHeader;
    if (o_.binary) std::memcpy(p + kHeader, bin_pattern_.data() + (c.id * 7 + seq) % 256, fill);
    else std::memcpy(p + kHeader, text_pattern_.data() + (c.id * 7 + seq) % 26, fill);
    send_frame(c, o_.binary ? 2 : 1, p, o_.size);
    ++st_.sent;
}

void LoadGen::send_close(Conn& c, std::uint16_t code) {
    const std::uint8_t body[2] = {std::uint8_t(code >> 8), std::uint8_t(code)};
    send_frame(c, 8, body, 2);
    c.close_sent = true;
}

void LoadGen::on_event(Conn& c, std::uint32_t ev, std::uint64_t now) {
    if (c.st == St::Connecting) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            fail(c, "connect");
            return;
        }
        // Connected: send the upgrade request.
        std::uint8_t nonce[16];
        for (int i = 0; i < 16; i += 8) {
            const std::uint64_t r = rng_.next();
            std::memcpy(nonce + i, &r, 8);
        }
        const std::string key = base64(std::string_view(reinterpret_cast<const char*>(nonce), 16));
        c.accept = base64(sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
        std::string req = "GET " + o_.path + " HTTP/1.1\r\nHost: " + o_.host + ":" + std::to_string(o_.port) +
                          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                          "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: websock-loadgen\r\n\r\n";
        std::memcpy(c.out.reserve(req.size()), req.data(), req.size());
        c.out.commit(req.size());
        c.st = St::Handshake;
        flush(c);
        return;
    }
    if (ev & EPOLLOUT) flush(c);
    if (c.fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c, now);
}

void LoadGen::on_readable(Conn& c, std::uint64_t now) {
    for (;;) {
        constexpr std::size_t chunk = 16384;
        std::uint8_t* w = c.in.reserve(chunk);
        const std::size_t room = c.in.cap - c.in.len;
        const ssize_t n = ::recv(c.fd, w, room, 0);
        if (n > 0) {
            c.in.commit(std::size_t(n));
            if (std::size_t(n) == room) continue;  // there may be more
            break;
        }
        if (n == 0) {
            // EOF. During the close handshake the server may close right after its Close.
            if (c.in.size() > 0) {
                if (c.st == St::Handshake) parse_handshake(c, now);
                if (c.fd >= 0 && (c.st == St::Open || c.st == St::Closing)) parse_frames(c, now);
                if (c.fd < 0) return;
            }
            if (c.st == St::Closing && c.close_sent) {
                errno = 0;
                fail(c, "close");  // closed without echoing our Close: not clean, not an error
                return;
            }
            errno = 0;
            if (c.st == St::Open) ++st_.server_closes;
            fail(c, "server closed the connection");
            return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        fail(c, "recv");
        return;
    }
    if (c.st == St::Handshake) parse_handshake(c, now);
    if (c.fd >= 0 && (c.st == St::Open || c.st == St::Closing)) parse_frames(c, now);
    if (c.fd >= 0) flush(c);
}

bool ieq(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

void LoadGen::parse_handshake(Conn& c, std::uint64_t) {
    const std::string_view buf(reinterpret_cast<const char*>(c.in.data()), c.in.size());
    const std::size_t end = buf.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        if (buf.size() > 16384) {
            errno = 0;
            fail(c, "handshake (response too large)");
        }
        return;
    }
    const std::string_view head = buf.substr(0, end + 2);
    std::size_t pos = head.find("\r\n");
    const std::string_view status = head.substr(0, pos);
    bool ok = status.size() >= 12 && status.substr(0, 9) == "HTTP/1.1 " && status.substr(9, 3) == "101";
    bool upgrade = false, connection = false, accept = false, extensions = false;
    pos += 2;
    while (ok && pos < head.size()) {
        const std::size_t eol = head.find("\r\n", pos);
        const std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos) { ok = false; break; }
        const std::string_view name = trim(line.substr(0, colon));
        const std::string_view value = trim(line.substr(colon + 1));
        if (ieq(name, "Upgrade")) upgrade = ieq(value, "websocket");
        else if (ieq(name, "Connection")) {
            // A token list; look for "upgrade" case-insensitively.
            std::string v(value);
            for (auto& ch : v) ch = char(std::tolower(static_cast<unsigned char>(ch)));
            connection = v.find("upgrade") != std::string::npos;
        } else if (ieq(name, "Sec-WebSocket-Accept")) accept = value == c.accept;
        else if (ieq(name, "Sec-WebSocket-Extensions")) extensions = true;
    }
    if (!ok || !upgrade || !connection || !accept || extensions) {
        std::fprintf(stderr, "loadgen: connection %u: bad handshake response (%.*s; upgrade=%d connection=%d accept=%d extensions=%d)\n",
                     c.id, int(status.size()), status.data(), upgrade, connection, accept, extensions);
        errno = 0;
        c.attempts = 100;  // not retried
        fail(c, "handshake");
        return;
    }
    c.in.consume(end + 4);
    c.st = St::Open;
    --connecting_;
    note_open();
}

void LoadGen::parse_frames(Conn& c, std::uint64_t now) {
    while (c.fd >= 0) {
        const std::uint8_t* p = c.in.data();
        const std::size_t avail = c.in.size();
        if (avail < 2) return;
        const bool fin = p[0] & 0x80;
        const std::uint8_t rsv = p[0] & 0x70;
        const std::uint8_t op = p[0] & 0x0f;
        const bool masked = p[1] & 0x80;
        std::uint64_t len = p[1] & 0x7f;
        std::size_t h = 2;
        if (len == 126) {
            if (avail < 4) return;
            len = (std::uint64_t(p[2]) << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10) return;
            len = 0;
            for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
            h = 10;
        }
        auto proto_error = [&](const char* why) {
            ++st_.protocol_errors;
            std::fprintf(stderr, "loadgen: connection %u: protocol error: %s\n", c.id, why);
            errno = 0;
            fail(c, "protocol");
        };
        if (masked) return proto_error("masked server frame");
        if (rsv) return proto_error("RSV bits set without an extension");
        if (len > (std::uint64_t(1) << 31)) return proto_error("frame too large");
        if (op >= 8 && (!fin || len > 125)) return proto_error("bad control frame");
        if (avail < h + len) {
            c.in.reserve(h + len - avail);  // grow once for big frames
            return;
        }
        const std::uint8_t* payload = p + h;
        const std::size_t n = std::size_t(len);
        switch (op) {
        case 0x0:  // continuation
            if (!c.in_frag) return proto_error("continuation without a start");
            c.frag.insert(c.frag.end(), payload, payload + n);
            if (fin) {
                c.in_frag = false;
                std::vector<std::uint8_t> msg;
                msg.swap(c.frag);
                c.in.consume(h + n);
                on_message(c, c.frag_op, msg.data(), msg.size(), now);
                continue;
            }
            break;
        case 0x1:
        case 0x2:
            if (c.in_frag) return proto_error("new message inside a fragmented one");
            if (!fin) {
                c.in_frag = true;
                c.frag_op = op;
                c.frag.assign(payload, payload + n);
                break;
            }
            on_message(c, op, payload, n, now);
            if (c.fd < 0) return;
            break;
        case 0x8: {  // close
            if (c.close_sent) {
                ++st_.clean_closes;
                finish(c);
                return;
            }
            ++st_.server_closes;
            std::uint16_t code = n >= 2 ? std::uint16_t((payload[0] << 8) | payload[1]) : 1005;
            std::fprintf(stderr, "loadgen: connection %u: server sent Close %u\n", c.id, code);
            c.in.consume(h + n);
            send_close(c, 1000);
            flush(c);
            if (c.fd >= 0) {
                --open_;
                c.st = St::Failed;
                epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
                close(c.fd);
                c.fd = -1;
            }
            return;
        }
        case 0x9:  // ping -> pong with the same payload
            ++st_.pings;
            send_frame(c, 0xA, payload, n);
            break;
        case 0xA:
            break;
        default:
            return proto_error("unknown opcode");
        }
        c.in.consume(h + n);
    }
}

void LoadGen::on_message(Conn& c, std::uint8_t op, const std::uint8_t* p, std::size_t n, std::uint64_t now) {
    ++st_.received;
    const std::uint8_t want_op = o_.binary ? 2 : 1;
    std::uint64_t seq = 0, ts = 0;
    bool good = op == want_op && n == o_.size && get_hex12(p, seq) && get_hex12(p + 12, ts) && seq == c.recvd;
    if (good) {
        const std::size_t fill = o_.size - kHeader;
        const std::uint8_t* expect = o_.binary ? bin_pattern_.data() + (c.id * 7 + seq) % 256 : text_pattern_.data() + (c.id * 7 + seq) % 26;
        good = std::memcmp(p + kHeader, expect, fill) == 0;
    }
    if (!good) {
        if (st_.mismatches < 5)
            std::fprintf(stderr, "loadgen: connection %u: echo mismatch (opcode %u, %zu bytes, expected seq %" PRIu64 ")\n", c.id, op, n,
                         c.recvd);
        ++st_.mismatches;
        ++c.recvd;  // keep counting so the run can finish
        return;
    }
    ++c.recvd;
    if (counting_) ++st_.window_echoes;
    if (o_.mode == Mode::Latency) {
        const std::uint64_t sched = epoch_ + ts;
        if (sched != due_of(c, seq)) {  // the echoed timestamp must be the one we scheduled
            if (st_.mismatches < 5) std::fprintf(stderr, "loadgen: connection %u: echoed timestamp differs from the schedule\n", c.id);
            ++st_.mismatches;
            return;
        }
        std::uint64_t actual = sched;
        if (!c.sent_at.empty()) {
            actual = c.sent_at.front();
            c.sent_at.pop_front();
        }
        if (sched >= win_start_ && sched < win_end_) {
            st_.lat_ns.push_back(now - sched);
            st_.svc_ns.push_back(now - actual);
        }
    } else if (o_.mode == Mode::Throughput && sending_ && now < win_end_) {
        send_data(c, rel(now));
    }
}

void LoadGen::poll(std::uint64_t deadline_ns, std::uint64_t max_wait_ns) {
    epoll_event evs[512];
    std::uint64_t now = now_ns();
    std::uint64_t wait = deadline_ns > now ? deadline_ns - now : 0;
    if (wait > max_wait_ns) wait = max_wait_ns;
    if (o_.spin) wait = 0;  // the callers loop until their deadline
    timespec ts{long(wait / 1'000'000'000ull), long(wait % 1'000'000'000ull)};
    const int n = epoll_pwait2(epfd_, evs, 512, &ts, nullptr);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_pwait2");
    }
    now = now_ns();
    for (int i = 0; i < n; ++i) {
        Conn& c = conns_[evs[i].data.u32];
        if (c.fd < 0) continue;
        on_event(c, evs[i].events, now);
    }
}

bool LoadGen::pending_echoes() const {
    for (const auto& c : conns_)
        if (c.st == St::Open && c.recvd < c.sent) return true;
    return false;
}

void LoadGen::close_all() {
    for (auto& c : conns_) {
        if (c.st != St::Open) continue;
        send_close(c, 1000);
        c.st = St::Closing;
        flush(c);
    }
    const std::uint64_t deadline = now_ns() + 2'000'000'000ull;
    while (open_ > 0 && now_ns() < deadline) poll(deadline, 50'000'000ull);
    for (auto& c : conns_) {
        if (c.fd >= 0) {
            close(c.fd);
            c.fd = -1;
        }
    }
}

const char* mode_name(Mode m) {
    switch (m) {
    case Mode::Throughput: return "throughput";
    case Mode::Latency: return "latency";
    case Mode::Idle: return "idle";
    }
    return "?";
}

double pct(std::vector<std::uint64_t>& v, double q) {  // v sorted; nearest-rank
    if (v.empty()) return 0;
    std::size_t idx = std::size_t(q * double(v.size()));
    if (idx >= v.size()) idx = v.size() - 1;
    return double(v[idx]) / 1000.0;
}

int LoadGen::run() {
    // ---- connect phase: at most connect_batch handshakes in flight --------------------------
    const std::uint64_t t_connect = now_ns();
    const std::uint64_t connect_deadline = t_connect + std::uint64_t(o_.connect_timeout * 1e9);
    const ProcSample before = sample_proc(o_.server_pid);
    while (now_ns() < connect_deadline) {
        while (connecting_ < o_.connect_batch && (!retry_.empty() || next_connect_ < conns_.size())) {
            if (!retry_.empty()) {
                const std::uint32_t id = retry_.back();
                retry_.pop_back();
                start_connect(conns_[id]);
            } else {
                start_connect(conns_[next_connect_++]);
            }
        }
        if (connecting_ == 0 && retry_.empty() && next_connect_ == conns_.size()) break;
        poll(connect_deadline, 100'000'000ull);
    }
    for (auto& c : conns_) {
        if (c.st == St::Connecting || c.st == St::Handshake || c.st == St::Idle) {
            errno = ETIMEDOUT;
            c.attempts = 100;
            if (c.st == St::Idle) { ++st_.connect_failures; c.st = St::Failed; }
            else fail(c, "connect (timeout)");
        }
    }
    const double connect_s = double(now_ns() - t_connect) / 1e9;
    if (open_ == 0) {
        std::fprintf(stderr, "loadgen: no connection could be opened\n");
        return 2;
    }

    ProcSample s0, s1;
    MachineSample m0, m1;
    double c0 = 0, c1 = 0;
    const std::uint64_t t0 = t0_ = now_ns();
    std::vector<std::uint32_t> open_ids;
    for (auto& c : conns_)
        if (c.st == St::Open) {
            c.slot = std::uint32_t(open_ids.size());
            open_ids.push_back(c.id);
        }
    slots_ = open_ids.size();
    const std::uint64_t warm_ns = std::uint64_t(o_.warmup * 1e9);
    const std::uint64_t dur_ns = std::uint64_t(o_.duration * 1e9);
    std::uint64_t unanswered = 0;
    bool drained = true;

    if (o_.mode == Mode::Throughput) {
        win_start_ = t0 + warm_ns;
        win_end_ = win_start_ + dur_ns;
        sending_ = true;
        for (auto& c : conns_) {
            if (c.st != St::Open) continue;
            for (int k = 0; k < o_.inflight; ++k) send_data(c, rel(t0));
            flush(c);
        }
        bool sampled = false;
        std::uint64_t now;
        while ((now = now_ns()) < win_end_ && open_ > 0) {
            if (!sampled && now >= win_start_) {
                s0 = sample_proc(o_.server_pid);
                c0 = cpu_self_s();
                m0 = sample_machine();
                st_.window_echoes = 0;
                counting_ = true;
                t_s0_ = now_ns();
                sampled = true;
            }
            poll(sampled ? win_end_ : win_start_, 1'000'000ull);
        }
        s1 = sample_proc(o_.server_pid);
        c1 = cpu_self_s();
        m1 = sample_machine();
        counting_ = false;
        t_s1_ = now_ns();
        sending_ = false;
    } else if (o_.mode == Mode::Latency) {
        if (prctl(PR_SET_TIMERSLACK, 1UL) != 0) std::fprintf(stderr, "loadgen: PR_SET_TIMERSLACK failed\n");
        win_start_ = t0 + warm_ns;
        win_end_ = win_start_ + dur_ns;
        const std::uint64_t total = std::uint64_t(o_.rate * double(warm_ns + dur_ns) / 1e9);
        st_.lat_ns.reserve(std::size_t(o_.rate * o_.duration * 1.05) + 16);
        std::vector<std::uint8_t> is_dirty(conns_.size(), 0);
        std::uint64_t j = 0;
        bool sampled = false;
        // `total` is every message scheduled before win_end_; all of them are sent, late ones
        // late (and measured from their schedule), even if the loop wakes after win_end_.
        for (;;) {
            const std::uint64_t now = now_ns();
            if (!sampled && now >= win_start_) {
                s0 = sample_proc(o_.server_pid);
                c0 = cpu_self_s();
                m0 = sample_machine();
                st_.window_echoes = 0;
                counting_ = true;
                t_s0_ = now_ns();
                sampled = true;
            }
            // Send everything that is due, each stamped with its scheduled time.
            while (j < total && due(j) <= now) {
                Conn& c = conns_[open_ids[j % open_ids.size()]];
                const std::uint64_t d = due(j);
                if (now - d > st_.max_send_lag_ns) st_.max_send_lag_ns = now - d;
                if (c.st == St::Open) {
                    send_data(c, rel(d));
                    c.sent_at.push_back(now);
                    if (!is_dirty[c.id]) { is_dirty[c.id] = 1; dirty_.push_back(c.id); }
                } else if (d >= win_start_) {
                    ++unanswered;  // its connection is gone: it can never be answered
                }
                ++j;
            }
            for (auto id : dirty_) {
                is_dirty[id] = 0;
                if (conns_[id].fd >= 0) flush(conns_[id]);
            }
            dirty_.clear();
            if (now >= win_end_ || open_ == 0) break;
            std::uint64_t next = j < total ? due(j) : win_end_;
            if (!sampled && win_start_ < next) next = win_start_;
            poll(std::min(next, win_end_), 10'000'000ull);
        }
        s1 = sample_proc(o_.server_pid);
        c1 = cpu_self_s();
        m1 = sample_machine();
        counting_ = false;
        t_s1_ = now_ns();
    } else {  // idle
        win_start_ = t0;
        win_end_ = UINT64_MAX;
        if (o_.idle_echo) {
            for (auto& c : conns_) {
                if (c.st != St::Open) continue;
                send_data(c, rel(t0));
                flush(c);
            }
        }
        const std::uint64_t hold_end = t0 + warm_ns + dur_ns;
        while (now_ns() < hold_end && open_ > 0) poll(hold_end, 100'000'000ull);
        s1 = sample_proc(o_.server_pid);
        s0 = s1;
    }

    // ---- drain: wait (bounded) for the echoes still in flight --------------------------------
    const std::uint64_t drain_deadline = now_ns() + std::uint64_t(o_.drain * 1e9);
    while (pending_echoes() && now_ns() < drain_deadline) poll(drain_deadline, 10'000'000ull);
    const std::uint64_t drain_end = now_ns();
    for (const auto& c : conns_) {
        if (c.recvd >= c.sent) continue;
        unanswered += c.sent - c.recvd;
        drained = false;
        // Latency mode: a message of the window that never came back counts as at least as
        // late as the end of the drain, so a server that stops answering cannot improve its
        // percentiles by doing so.
        if (o_.mode == Mode::Latency)
            for (std::uint64_t seq = c.recvd; seq < c.sent; ++seq) {
                const std::uint64_t d = due_of(c, seq);
                const std::size_t k = std::size_t(seq - c.recvd);
                if (d >= win_start_ && d < win_end_) {
                    st_.lat_ns.push_back(drain_end - d);
                    st_.svc_ns.push_back(drain_end - (k < c.sent_at.size() ? c.sent_at[k] : d));
                }
            }
    }
    st_.lat_unanswered = unanswered;
    const ProcSample after_drain = sample_proc(o_.server_pid);
    close_all();

    // ---- report -----------------------------------------------------------------------------
    const double window_s = t_s1_ > t_s0_ ? double(t_s1_ - t_s0_) / 1e9 : o_.duration;
    const double server_cpu = (s0.ok && s1.ok) ? s1.cpu_s - s0.cpu_s : -1;
    const double msgs = double(st_.window_echoes);
    const double rate = msgs / window_s;
    const double cpu_us_per_msg = (server_cpu >= 0 && msgs > 0) ? server_cpu * 1e6 / msgs : -1;
    const double client_cpu_pct = o_.mode == Mode::Idle ? 0 : (c1 - c0) / window_s * 100.0;
    const int opened = o_.connections - int(st_.connect_failures);
    // CPU that neither the server nor this loadgen used during the window, in % of one CPU.
    double other_pct = -1, steal_pct = -1;
    if (m0.ok && m1.ok && o_.mode != Mode::Idle) {
        const double ours = (c1 - c0) + (server_cpu >= 0 ? server_cpu : 0);
        other_pct = std::max(0.0, (m1.busy_s - m0.busy_s - ours) / window_s * 100.0);
        steal_pct = (m1.steal_s - m0.steal_s) / window_s * 100.0;
    }

    std::string json = "{\"mode\":\"";
    json += mode_name(o_.mode);
    json += "\"";
    char tmp[512];
    auto add = [&](const char* k, double v, const char* fmt = "%.3f") {
        std::snprintf(tmp, sizeof tmp, fmt, v);
        json += ",\"";
        json += k;
        json += "\":";
        json += tmp;
    };
    if (!o_.label.empty()) json += ",\"label\":\"" + o_.label + "\"";
    add("connections", o_.connections, "%.0f");
    add("opened", opened, "%.0f");
    add("size", double(o_.size), "%.0f");
    json += o_.binary ? ",\"binary\":true" : ",\"binary\":false";
    add("connect_s", connect_s);
    add("warmup_s", o_.warmup);
    add("duration_s", o_.duration);
    add("sent", double(st_.sent), "%.0f");
    add("received", double(st_.received), "%.0f");
    add("unanswered", double(unanswered), "%.0f");
    add("mismatches", double(st_.mismatches), "%.0f");
    add("protocol_errors", double(st_.protocol_errors), "%.0f");
    add("server_closes", double(st_.server_closes), "%.0f");
    add("io_errors", double(st_.io_errors), "%.0f");
    add("connect_failures", double(st_.connect_failures), "%.0f");
    add("clean_closes", double(st_.clean_closes), "%.0f");
    add("pings", double(st_.pings), "%.0f");
    std::string human;
    if (o_.mode == Mode::Throughput) {
        add("inflight", o_.inflight, "%.0f");
        add("window_echoes", msgs, "%.0f");
        add("msgs_per_s", rate, "%.1f");
        add("server_cpu_s", server_cpu);
        add("server_cpu_us_per_msg", cpu_us_per_msg, "%.4f");
        add("client_cpu_pct", client_cpu_pct, "%.1f");
        add("other_cpu_pct", other_pct, "%.1f");
        add("steal_pct", steal_pct, "%.1f");
        std::snprintf(tmp, sizeof tmp, "throughput: %.0f msg/s (%d conns x %d in flight, %zu B)%s", rate, opened, o_.inflight, o_.size,
                      cpu_us_per_msg >= 0 ? "" : "");
        human = tmp;
        if (cpu_us_per_msg >= 0) {
            std::snprintf(tmp, sizeof tmp, ", server CPU %.3f us/msg (%.0f%% of a core)", cpu_us_per_msg, server_cpu / window_s * 100);
            human += tmp;
        }
        std::snprintf(tmp, sizeof tmp, ", loadgen CPU %.0f%%", client_cpu_pct);
        human += tmp;
        if (other_pct >= 0) {
            std::snprintf(tmp, sizeof tmp, ", other processes %.0f%%", other_pct);
            human += tmp;
        }
    } else if (o_.mode == Mode::Latency) {
        auto& v = st_.lat_ns;
        std::sort(v.begin(), v.end());
        auto& sv = st_.svc_ns;
        std::sort(sv.begin(), sv.end());
        double mean = 0;
        for (auto x : v) mean += double(x);
        mean = v.empty() ? 0 : mean / double(v.size()) / 1000.0;
        add("rate_target", o_.rate, "%.1f");
        add("rate_achieved", msgs / window_s, "%.1f");
        add("samples", double(v.size()), "%.0f");
        add("p50_us", pct(v, 0.50), "%.1f");
        add("p90_us", pct(v, 0.90), "%.1f");
        add("p99_us", pct(v, 0.99), "%.1f");
        add("p999_us", pct(v, 0.999), "%.1f");
        add("max_us", v.empty() ? 0 : double(v.back()) / 1000.0, "%.1f");
        add("mean_us", mean, "%.1f");
        add("max_send_lag_us", double(st_.max_send_lag_ns) / 1000.0, "%.1f");
        add("p50_from_send_us", pct(sv, 0.50), "%.1f");
        add("p99_from_send_us", pct(sv, 0.99), "%.1f");
        add("p999_from_send_us", pct(sv, 0.999), "%.1f");
        add("max_from_send_us", sv.empty() ? 0 : double(sv.back()) / 1000.0, "%.1f");
        add("server_cpu_s", server_cpu);
        add("server_cpu_us_per_msg", cpu_us_per_msg, "%.4f");
        add("client_cpu_pct", client_cpu_pct, "%.1f");
        add("other_cpu_pct", other_pct, "%.1f");
        add("steal_pct", steal_pct, "%.1f");
        std::snprintf(tmp, sizeof tmp,
                      "latency @ %.0f msg/s over %d conns (%zu B): p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us "
                      "(%zu samples, %" PRIu64 " unanswered; from the actual send: p50 %.1f us, p99 %.1f us; loadgen sent up to %.0f us "
                      "late, other processes %.0f%%)",
                      o_.rate, opened, o_.size, pct(v, 0.5), pct(v, 0.9), pct(v, 0.99), pct(v, 0.999),
                      v.empty() ? 0 : double(v.back()) / 1000.0, v.size(), unanswered, pct(sv, 0.5), pct(sv, 0.99),
                      double(st_.max_send_lag_ns) / 1000.0, other_pct);
        human = tmp;
    } else {
        add("rss_before_kb", double(before.rss_kb), "%.0f");
        add("rss_kb", double(s1.rss_kb), "%.0f");
        add("rss_after_drain_kb", double(after_drain.rss_kb), "%.0f");
        add("threads", double(s1.threads), "%.0f");
        add("rss_per_conn_kb", (s1.rss_kb >= 0 && before.rss_kb >= 0 && opened > 0) ? double(s1.rss_kb - before.rss_kb) / opened : -1, "%.2f");
        std::snprintf(tmp, sizeof tmp, "idle: %d connections held %.1f s", opened, o_.warmup + o_.duration);
        human = tmp;
        if (s1.rss_kb >= 0) {
            std::snprintf(tmp, sizeof tmp, ", server VmRSS %.1f MiB (%.1f MiB before, %.1f KiB/conn), %ld threads", double(s1.rss_kb) / 1024,
                          double(before.rss_kb) / 1024, double(s1.rss_kb - before.rss_kb) / opened, s1.threads);
            human += tmp;
        }
    }
    json += "}";
    std::printf("%s\n%s\n", json.c_str(), human.c_str());
    std::fflush(stdout);

    if (st_.connect_failures > 0) return 2;
    if (st_.mismatches || st_.protocol_errors || st_.server_closes || st_.io_errors) return 3;
    if (o_.mode != Mode::Latency && !drained) return 3;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
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
