// bench/loadgen/websocket.cpp — the RFC 6455 client side: SHA-1 and base64 for the accept
// key, the upgrade response check, masked frames out and frames in (split, coalesced or
// fragmented alike).
#include "bench/loadgen/loadgen.hpp"

namespace loadgen {

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

namespace {

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

}  // namespace

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

void LoadGen::send_close(Conn& c, std::uint16_t code) {
    const std::uint8_t body[2] = {std::uint8_t(code >> 8), std::uint8_t(code)};
    send_frame(c, 8, body, 2);
    c.close_sent = true;
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

}  // namespace loadgen
