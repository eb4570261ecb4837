// fanout: the hub's fan-out benchmark. One publisher, N WebSocket subscribers on one channel,
// small messages; reports deliveries per second and publish-to-delivery latency.
//
//   fanout --port P [--subscribers 1000] [--size 32] [--warmup 2] [--duration 5]
//          [--sub-path /channel/bench/] [--publish http|ws] [--pub-path /channel/bench/]
//          [--pub-port P2] [--pwd PWD] [--window 256] [--pipeline 32]
//
// Subscribers: N connections upgrade to ws://127.0.0.1:PORT{sub-path} and only read.
// Publisher, one connection:
//   http  POST {pub-path} (websock-hub's aiows API), keep-alive, up to --pipeline requests in
//         flight; every answer must be 201.
//   ws    a WebSocket connection to {pub-path} whose messages the server relays to every other
//         client (the broadcast servers of bench/peers/*_fanout.*, for comparison).
// --pub-port publishes to another node (two hubs sharing Redis): latency across nodes.
//
// Each message is `size` bytes of text: its sequence number and its send time (16 hex digits
// each), then filler. Every subscriber must get every message exactly once and in order
// (else exit 3). The publisher keeps at most --window messages not yet delivered to all
// subscribers, so queues stay bounded and latency means something. Deliveries are counted,
// and latency sampled, over the measured window only (after the warm-up).
//
// Output: one JSON line and one human line. Exit: 0 ok, 1 usage, 2 connect/handshake failed,
// 3 lost, doubled, reordered or corrupt messages, a refused publish, or a stall.
// Bounded: loopback only, --duration <= 120 s, every phase has a deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cctype>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

struct Options {
    int port = 0;
    int pub_port = 0;
    int subscribers = 1000;
    int size = 32;
    double warmup = 2;
    double duration = 5;
    std::string sub_path = "/channel/bench/";
    std::string pub_path;  // default: sub_path
    bool publish_ws = false;
    std::string pwd;
    int window = 256;
    int pipeline = 32;
};

[[noreturn]] void die(int code, const char* what) {
    std::fprintf(stderr, "fanout: %s\n", what);
    std::exit(code);
}

int connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die(2, "socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 && errno != EINPROGRESS) die(2, "connect() failed");
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

std::string base64(const unsigned char* data, int size) {
    std::string out(4 * ((size + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, size);
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string accept_for(const std::string& key) {
    const std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
    return base64(digest, SHA_DIGEST_LENGTH);
}

struct Conn {
    int fd = -1;
    bool upgraded = false;
    std::string key;
    std::string in;   // unparsed bytes
    std::string out;  // unwritten bytes
    std::uint64_t expected = 0;  // next sequence number (subscribers)
};

bool write_some(Conn& c) {
    while (!c.out.empty()) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

// Append what the socket has to c.in. False when the peer closed or failed.
bool read_some(Conn& c, char* buffer, std::size_t size) {
    for (;;) {
        const ssize_t n = ::recv(c.fd, buffer, size, 0);
        if (n > 0) {
            c.in.append(buffer, static_cast<std::size_t>(n));
            if (static_cast<std::size_t>(n) < size) return true;
        } else if (n == 0) {
            return false;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return true;
        } else if (errno != EINTR) {
            return false;
        }
    }
}

std::string upgrade_request(const std::string& path, const std::string& key) {
    return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
           "\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

// Take the 101 off c.in; -1 not yet complete, 0 bad, 1 ok.
int take_handshake(Conn& c) {
    const auto end = c.in.find("\r\n\r\n");
    if (end == std::string::npos) return c.in.size() > 8192 ? 0 : -1;
    const std::string head = c.in.substr(0, end + 4);
    c.in.erase(0, end + 4);
    if (head.rfind("HTTP/1.1 101", 0) != 0) return 0;
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    const auto at = lower.find("sec-websocket-accept:");
    if (at == std::string::npos) return 0;
    auto value_start = head.find_first_not_of(' ', at + 21);
    const auto value_end = head.find("\r\n", value_start);
    return head.substr(value_start, value_end - value_start) == accept_for(c.key) ? 1 : 0;
}

std::string random_key() {
    unsigned char raw[16];
    for (auto& b : raw) b = static_cast<unsigned char>(std::rand());
    return base64(raw, 16);
}

std::uint64_t parse_hex(std::string_view text) {
    std::uint64_t value = 0;
    for (const char ch : text) {
        value <<= 4;
        if (ch >= '0' && ch <= '9') value |= static_cast<std::uint64_t>(ch - '0');
        else if (ch >= 'a' && ch <= 'f') value |= static_cast<std::uint64_t>(ch - 'a' + 10);
        else return UINT64_MAX;
    }
    return value;
}

void usage() {
    std::fprintf(stderr,
                 "usage: fanout --port P [--subscribers N] [--size B] [--warmup S] [--duration S] [--sub-path PATH]\n"
                 "              [--publish http|ws] [--pub-path PATH] [--pub-port P] [--pwd PWD] [--window N] [--pipeline N]\n");
    std::exit(1);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (i + 1 >= argc) usage();
        const char* v = argv[++i];
        if (arg == "--port") o.port = std::atoi(v);
        else if (arg == "--pub-port") o.pub_port = std::atoi(v);
        else if (arg == "--subscribers") o.subscribers = std::atoi(v);
        else if (arg == "--size") o.size = std::atoi(v);
        else if (arg == "--warmup") o.warmup = std::atof(v);
        else if (arg == "--duration") o.duration = std::atof(v);
        else if (arg == "--sub-path") o.sub_path = v;
        else if (arg == "--pub-path") o.pub_path = v;
        else if (arg == "--publish") o.publish_ws = std::string_view(v) == "ws";
        else if (arg == "--pwd") o.pwd = v;
        else if (arg == "--window") o.window = std::atoi(v);
        else if (arg == "--pipeline") o.pipeline = std::atoi(v);
        else usage();
    }
    if (o.port <= 0 || o.port > 65535 || o.subscribers < 1 || o.subscribers > 10000 || o.size < 32 || o.size > 65536 ||
        o.duration <= 0 || o.duration > 120 || o.warmup < 0 || o.warmup > 60 || o.window < 1 || o.window > 65536 ||
        o.pipeline < 1)
        usage();
    if (o.pub_port == 0) o.pub_port = o.port;
    if (o.pub_path.empty()) o.pub_path = o.sub_path;
    return o;
}

class Bench {
public:
    explicit Bench(Options options) : o_(std::move(options)), counts_(kRing, 0) {}

    int run() {
        epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
        open_subscribers();
        open_publisher();
        return measure();
    }

private:
    static constexpr std::size_t kRing = 1 << 17;

    void add(int fd, std::uint64_t tag, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = tag;
        ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
    }
    void modify(int fd, std::uint64_t tag, std::uint32_t events) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = tag;
        ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev);
    }

    // Open in batches of 100, each upgraded before the next (a backlog of 1000 SYNs at once
    // would hit the server's listen queue for no reason).
    void open_subscribers() {
        subs_.resize(static_cast<std::size_t>(o_.subscribers));
        const auto deadline = Clock::now() + std::chrono::seconds(30);
        std::vector<epoll_event> events(256);
        for (std::size_t first = 0; first < subs_.size(); first += 100) {
            const std::size_t last = std::min(subs_.size(), first + 100);
            for (std::size_t i = first; i < last; ++i) {
                Conn& c = subs_[i];
                c.fd = connect_loopback(o_.port);
                c.key = random_key();
                c.out = upgrade_request(o_.sub_path, c.key);
                add(c.fd, i, EPOLLIN | EPOLLOUT);
            }
            std::size_t upgraded = 0;
            while (upgraded < last - first) {
                if (Clock::now() > deadline) die(2, "subscribers did not all upgrade within 30 s");
                const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
                for (int e = 0; e < n; ++e) {
                    Conn& c = subs_[events[e].data.u64];
                    if (!c.out.empty()) {
                        if (!write_some(c)) die(2, "a subscriber's upgrade request could not be sent");
                        if (c.out.empty()) modify(c.fd, events[e].data.u64, EPOLLIN);
                    }
                    if ((events[e].events & EPOLLIN) && !c.upgraded) {
                        if (!read_some(c, buffer_, sizeof buffer_)) die(2, "a subscriber's connection closed during the upgrade");
                        const int state = take_handshake(c);
                        if (state == 0) die(2, "a subscriber's upgrade was refused or its answer is wrong");
                        if (state == 1) {
                            c.upgraded = true;
                            ++upgraded;
                        }
                    }
                }
            }
        }
    }

    void open_publisher() {
        pub_.fd = connect_loopback(o_.pub_port);
        add(pub_.fd, kPublisherTag, EPOLLIN | EPOLLOUT);
        if (!o_.publish_ws) return;
        pub_.key = random_key();
        pub_.out = upgrade_request(o_.pub_path, pub_.key);
        const auto deadline = Clock::now() + std::chrono::seconds(10);
        while (!pub_.upgraded) {
            if (Clock::now() > deadline) die(2, "the publisher did not upgrade within 10 s");
            if (!write_some(pub_)) die(2, "the publisher's upgrade request could not be sent");
            if (!read_some(pub_, buffer_, sizeof buffer_)) die(2, "the publisher's connection closed during the upgrade");
            const int state = take_handshake(pub_);
            if (state == 0) die(2, "the publisher's upgrade was refused");
            if (state == 1) pub_.upgraded = true;
        }
    }

    std::string message(std::uint64_t seq) const {
        char head[33];
        std::snprintf(head, sizeof head, "%016" PRIx64 "%016" PRIx64, seq, now_ns());
        std::string body(head, 32);
        body.append(static_cast<std::size_t>(o_.size - 32), 'x');
        return body;
    }

    void publish_one() {
        const std::string body = message(published_);
        if (o_.publish_ws) {
            // A masked client text frame (mask 0: the bytes need no change, the RFC allows it).
            std::string frame;
            frame.push_back(static_cast<char>(0x81));
            if (body.size() < 126) {
                frame.push_back(static_cast<char>(0x80 | body.size()));
            } else {
                frame.push_back(static_cast<char>(0x80 | 126));
                frame.push_back(static_cast<char>(body.size() >> 8));
                frame.push_back(static_cast<char>(body.size() & 0xff));
            }
            frame.append(4, '\0');
            frame += body;
            pub_.out += frame;
        } else {
            pub_.out += "POST " + o_.pub_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
            if (!o_.pwd.empty()) pub_.out += "X-Hub-Password: " + o_.pwd + "\r\n";
            pub_.out += "\r\n" + body;
            ++http_in_flight_;
        }
        ++published_;
    }

    // Answers to the publisher's POSTs: each must be 201.
    void take_http_answers() {
        for (;;) {
            const auto end = pub_.in.find("\r\n\r\n");
            if (end == std::string::npos) return;
            if (pub_.in.rfind("HTTP/1.1 201", 0) != 0) {
                std::fprintf(stderr, "fanout: a publish was answered: %.*s\n", static_cast<int>(std::min<std::size_t>(end, 200)), pub_.in.data());
                std::exit(3);
            }
            std::size_t length = 0;
            std::string lower = pub_.in.substr(0, end);
            std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            if (const auto at = lower.find("content-length:"); at != std::string::npos) length = std::strtoull(lower.c_str() + at + 15, nullptr, 10);
            if (pub_.in.size() < end + 4 + length) return;
            pub_.in.erase(0, end + 4 + length);
            --http_in_flight_;
            ++answered_;
        }
    }

    // Frames from a subscriber; false on a protocol problem.
    bool take_frames(Conn& c, std::uint64_t now, bool measuring) {
        std::size_t at = 0;
        const std::size_t size = c.in.size();
        const auto* p = reinterpret_cast<const unsigned char*>(c.in.data());
        while (size - at >= 2) {
            const unsigned opcode = p[at] & 0x0f;
            std::uint64_t length = p[at + 1] & 0x7f;
            std::size_t header = 2;
            if (p[at + 1] & 0x80) return complain("a masked server frame");
            if (length == 126) {
                if (size - at < 4) break;
                length = (std::uint64_t{p[at + 2]} << 8) | p[at + 3];
                header = 4;
            } else if (length == 127) {
                if (size - at < 10) break;
                length = 0;
                for (int i = 0; i < 8; ++i) length = (length << 8) | p[at + 2 + i];
                header = 10;
            }
            if (size - at < header + length) break;
            const std::string_view payload(c.in.data() + at + header, length);
            at += header + length;
            if (opcode == 0x9 || opcode == 0xA) continue;  // ping/pong: ws answers are not needed here
            if (opcode == 0x8) return complain("the server closed a subscriber");
            if (opcode != 0x1 || !(p[at - header - length] & 0x80)) return complain("not a whole text frame");
            if (payload.size() != static_cast<std::size_t>(o_.size)) return complain("a message of the wrong size");
            const std::uint64_t seq = parse_hex(payload.substr(0, 16));
            if (seq != c.expected) {
                std::fprintf(stderr, "fanout: a subscriber expected message %" PRIu64 " and got %" PRIu64 "\n", c.expected, seq);
                return false;
            }
            ++c.expected;
            ++delivered_total_;
            if (measuring) {
                ++delivered_measured_;
                const std::uint64_t sent = parse_hex(payload.substr(16, 16));
                if ((delivered_measured_ & 7) == 0 && sent <= now) latencies_ns_.push_back(now - sent);  // every 8th: enough samples
            }
            auto& count = counts_[seq % kRing];
            if (++count == static_cast<std::uint32_t>(o_.subscribers)) {
                while (fully_delivered_ < published_ && counts_[fully_delivered_ % kRing] == static_cast<std::uint32_t>(o_.subscribers)) {
                    counts_[fully_delivered_ % kRing] = 0;
                    ++fully_delivered_;
                }
            }
        }
        c.in.erase(0, at);
        return true;
    }

    static bool complain(const char* what) {
        std::fprintf(stderr, "fanout: %s\n", what);
        return false;
    }

    int measure() {
        const auto start = Clock::now();
        const auto measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.warmup));
        const auto measure_to = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.duration));
        const auto drain_deadline = measure_to + std::chrono::seconds(10);
        std::vector<epoll_event> events(1024);
        bool measuring = false;
        bool stopped_publishing = false;
        std::uint64_t window_start_published = 0;
        std::uint64_t window_end_published = 0;
        auto last_progress = Clock::now();
        std::uint64_t last_fully = 0;
        for (;;) {
            const auto now_tp = Clock::now();
            if (!measuring && !stopped_publishing && now_tp >= measure_from) {
                measuring = true;
                window_start_published = published_;
            }
            if (measuring && now_tp >= measure_to) {
                measuring = false;
                stopped_publishing = true;
                window_end_published = published_;
            }
            if (stopped_publishing && fully_delivered_ == published_ && (o_.publish_ws || http_in_flight_ == 0)) break;
            if (now_tp > drain_deadline) die(3, "messages still undelivered 10 s after the end");
            if (fully_delivered_ != last_fully) {
                last_fully = fully_delivered_;
                last_progress = now_tp;
            } else if (now_tp - last_progress > std::chrono::seconds(5)) {
                std::fprintf(stderr, "fanout: stalled: %" PRIu64 " published, %" PRIu64 " delivered to all\n", published_, fully_delivered_);
                return 3;
            }
            // Keep the publisher busy within the window and the pipeline.
            if (!stopped_publishing) {
                while (published_ - fully_delivered_ < static_cast<std::uint64_t>(o_.window) &&
                       (o_.publish_ws || http_in_flight_ < o_.pipeline))
                    publish_one();
            }
            if (!pub_.out.empty() && !write_some(pub_)) die(3, "the publisher's connection failed");
            modify(pub_.fd, kPublisherTag, pub_.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);

            const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 50);
            const std::uint64_t now = now_ns();
            for (int e = 0; e < n; ++e) {
                const std::uint64_t tag = events[e].data.u64;
                if (tag == kPublisherTag) {
                    if (events[e].events & EPOLLIN) {
                        if (!read_some(pub_, buffer_, sizeof buffer_)) die(3, "the publisher's connection closed");
                        if (o_.publish_ws) pub_.in.clear();  // a relay may echo to the publisher too; ignored
                        else take_http_answers();
                    }
                    continue;
                }
                Conn& c = subs_[tag];
                if (!read_some(c, buffer_, sizeof buffer_)) die(3, "a subscriber's connection closed");
                if (!take_frames(c, now, measuring)) return 3;
            }
        }
        for (const Conn& c : subs_)
            if (c.expected != published_) die(3, "a subscriber did not get every message");

        std::sort(latencies_ns_.begin(), latencies_ns_.end());
        auto pct = [&](double q) {
            if (latencies_ns_.empty()) return 0.0;
            const auto i = static_cast<std::size_t>(q * static_cast<double>(latencies_ns_.size() - 1));
            return static_cast<double>(latencies_ns_[i]) / 1000.0;
        };
        const double rate = static_cast<double>(delivered_measured_) / o_.duration;
        const double publishes = static_cast<double>(window_end_published - window_start_published) / o_.duration;
        std::printf("{\"mode\":\"fanout\",\"publish\":\"%s\",\"subscribers\":%d,\"size\":%d,\"duration_s\":%.1f,"
                    "\"deliveries_per_s\":%.0f,\"publishes_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,"
                    "\"published_total\":%" PRIu64 ",\"delivered_total\":%" PRIu64 "}\n",
                    o_.publish_ws ? "ws" : "http", o_.subscribers, o_.size, o_.duration, rate, publishes, pct(0.5), pct(0.99),
                    pct(1.0), published_, delivered_total_);
        std::printf("fanout: %d subscribers, %d-byte messages: %.0f deliveries/s (%.0f publishes/s), publish-to-delivery "
                    "p50 %.0f us, p99 %.0f us; %" PRIu64 " published, every one delivered to every subscriber in order\n",
                    o_.subscribers, o_.size, rate, publishes, pct(0.5), pct(0.99), published_);
        for (Conn& c : subs_) ::close(c.fd);
        ::close(pub_.fd);
        return 0;
    }

    static constexpr std::uint64_t kPublisherTag = UINT64_MAX;
    Options o_;
    int epoll_ = -1;
    std::vector<Conn> subs_;
    Conn pub_;
    std::vector<std::uint32_t> counts_;  // deliveries of message seq, at seq % kRing
    std::uint64_t published_ = 0;
    std::uint64_t answered_ = 0;
    std::uint64_t fully_delivered_ = 0;  // every message below this reached every subscriber
    int http_in_flight_ = 0;
    std::uint64_t delivered_total_ = 0;
    std::uint64_t delivered_measured_ = 0;
    std::vector<std::uint64_t> latencies_ns_;
    char buffer_[256 * 1024];
};

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse(argc, argv);
    std::srand(static_cast<unsigned>(now_ns()));
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < static_cast<rlim_t>(options.subscribers) + 16)
        die(1, "the open-file limit is too low for that many subscribers");
    auto bench = std::make_unique<Bench>(options);
    return bench->run();
}
