#include "websock/detail/packed_request.hpp"

#include "websock/detail/server_core.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace websock::detail {
namespace {

void put_size(std::string& out, std::size_t value) {
    do {
        const auto low = static_cast<std::uint8_t>(value & 0x7F);
        value >>= 7;
        out.push_back(static_cast<char>(value != 0 ? (low | 0x80) : low));
    } while (value != 0);
}

void put_field(std::string& out, std::string_view field) {
    put_size(out, field.size());
    out.append(field);
}

std::size_t size_of_size(std::size_t value) {
    std::size_t bytes = 1;
    while ((value >>= 7) != 0) ++bytes;
    return bytes;
}

class Reader {
public:
    explicit Reader(std::string_view packed) : rest_(packed) {}
    std::size_t size() {
        std::size_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (rest_.empty()) throw std::invalid_argument("packed request: truncated");
            const auto byte = static_cast<std::uint8_t>(rest_.front());
            rest_.remove_prefix(1);
            value |= static_cast<std::size_t>(byte & 0x7F) << shift;
            if ((byte & 0x80) == 0) return value;
        }
        throw std::invalid_argument("packed request: bad length");
    }
    std::string field() {
        const std::size_t length = size();
        if (length > rest_.size()) throw std::invalid_argument("packed request: truncated");
        std::string value(rest_.substr(0, length));
        rest_.remove_prefix(length);
        return value;
    }
    bool done() const noexcept { return rest_.empty(); }

private:
    std::string_view rest_;
};

// What the request parser makes of a target (codec::HttpRequestParser, on_headers_complete).
bool derives_path_and_query(const HttpRequest& request) {
    const std::string_view target = request.target;
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    const std::string_view query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);
    return request.path == path && request.query == query;
}

}  // namespace

std::string pack_request(const HttpRequest& request) {
    const bool derived = derives_path_and_query(request);
    auto field_bytes = [](std::string_view field) { return size_of_size(field.size()) + field.size(); };
    std::size_t total = 1 + field_bytes(request.method) + field_bytes(request.target) +
                        size_of_size(static_cast<std::size_t>(request.version_major)) +
                        size_of_size(static_cast<std::size_t>(request.version_minor)) +
                        size_of_size(request.headers.size()) + field_bytes(request.body);
    if (!derived) total += field_bytes(request.path) + field_bytes(request.query);
    for (const auto& [name, value] : request.headers) total += field_bytes(name) + field_bytes(value);
    std::string out;
    out.reserve(total);  // one allocation of the size needed, no spare room kept for the connection's life
    out.push_back(derived ? 'd' : 'e');
    put_field(out, request.method);
    put_field(out, request.target);
    if (!derived) {
        put_field(out, request.path);
        put_field(out, request.query);
    }
    put_size(out, static_cast<std::size_t>(request.version_major));
    put_size(out, static_cast<std::size_t>(request.version_minor));
    put_size(out, request.headers.size());
    for (const auto& [name, value] : request.headers) {
        put_field(out, name);
        put_field(out, value);
    }
    put_field(out, request.body);
    return out;
}

HttpRequest unpack_request(std::string_view packed, const std::string& peer_address) {
    if (packed.empty() || (packed.front() != 'd' && packed.front() != 'e'))
        throw std::invalid_argument("packed request: bad tag");
    const bool derived = packed.front() == 'd';
    Reader reader(packed.substr(1));
    HttpRequest request;
    request.method = reader.field();
    request.target = reader.field();
    if (derived) {
        const std::size_t question = request.target.find('?');
        request.path = request.target.substr(0, question);
        if (question != std::string::npos) request.query = request.target.substr(question + 1);
    } else {
        request.path = reader.field();
        request.query = reader.field();
    }
    request.version_major = static_cast<int>(reader.size());
    request.version_minor = static_cast<int>(reader.size());
    const std::size_t header_count = reader.size();
    request.headers.reserve(std::min<std::size_t>(header_count, packed.size() / 2));
    for (std::size_t i = 0; i < header_count; ++i) {
        std::string name = reader.field();
        request.headers.emplace_back(std::move(name), reader.field());
    }
    request.body = reader.field();
    if (!reader.done()) throw std::invalid_argument("packed request: trailing bytes");
    request.peer_address = peer_address;
    return request;
}

const HttpRequest& ClientCore::upgrade_request() noexcept {
    static const HttpRequest none;
    // Before the upgrade there is nothing to show (and nothing must be cached).
    if (!request_packed.load(std::memory_order_acquire)) return none;
    try {
        std::call_once(request_unpacked, [this] {
            rare().request = std::make_unique<HttpRequest>(unpack_request(packed_request, peer));
            decltype(packed_request)().swap(packed_request);  // the unpacked copy answers from now on
        });
    } catch (...) {
        return none;  // out of memory: a later call tries again
    }
    return *rare_if_made()->request;
}

}  // namespace websock::detail
