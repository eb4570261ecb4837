// permessage-deflate with DeflateOptions::shared_compressor: negotiation forces the server's
// no context takeover; connections that share a thread's compressor produce exactly what a
// compressor of their own would, in any interleaving and on several threads at once; a
// decompressor freed after each message decodes the next one.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "websock/codec/deflate.hpp"
#include "websock/codec/extension.hpp"

using namespace websock::codec;

namespace {

constexpr std::size_t kUnlimited = std::numeric_limits<std::size_t>::max();

DeflateOptions shared_options(bool shared = true) {
    DeflateOptions options;
    options.enabled = true;
    options.min_compress_bytes = 0;
    options.shared_compressor = shared;
    return options;
}

DeflateAgreement agree(const DeflateOptions& options, std::string_view offer = "permessage-deflate") {
    const auto parsed = parse_extensions(offer);
    REQUIRE(parsed.ok());
    auto agreement = negotiate_server(parsed.offers, options);
    REQUIRE(agreement.has_value());
    return *agreement;
}

/// Text that compresses, different per seed (JSON-like chat lines).
std::string message_for(std::uint32_t seed, std::size_t size) {
    std::mt19937 random(seed);
    static constexpr std::string_view words[] = {"\"user\":", "\"text\":", "hello", "world", "{", "}", ",", "42"};
    std::string text;
    while (text.size() < size) text += words[random() % std::size(words)];
    text.resize(size);
    return text;
}

std::string compress_one(PerMessageDeflate& deflate, std::string_view message) {
    std::string out;
    REQUIRE(deflate.compress(message, out));
    return out;
}

std::string inflate_one(PerMessageDeflate& inflate, std::string_view payload) {
    std::string out;
    REQUIRE(inflate.decompress(payload, true, out, kUnlimited) == InflateStatus::Ok);
    return out;
}

}  // namespace

TEST_CASE("deflate shared_compressor: the server answers with server_no_context_takeover, offered or not") {
    const auto agreement = agree(shared_options());
    CHECK(agreement.server_no_context_takeover);
    CHECK(agreement.response_header().find("server_no_context_takeover") != std::string::npos);
    CHECK_FALSE(agree(shared_options(false)).server_no_context_takeover);
    // a client that cannot accept it (it may, by RFC 7692 7.1.1.1, but ours checks) agrees too
    const auto client = accept_client_response(agreement.response_header(), [] {
        DeflateOptions options;
        options.enabled = true;
        return options;
    }());
    CHECK(client.error.empty());
}

TEST_CASE("deflate shared_compressor: interleaved connections get exactly what their own compressor gives") {
    const auto options = shared_options();
    const auto agreement = agree(options);
    auto own_options = shared_options(false);
    own_options.server_no_context_takeover = true;

    constexpr int kConnections = 5;
    std::vector<PerMessageDeflate> shared;
    std::vector<PerMessageDeflate> own;
    std::vector<PerMessageDeflate> clients;  // each connection's peer
    for (int i = 0; i < kConnections; ++i) {
        shared.emplace_back(Role::Server, agreement, options);
        own.emplace_back(Role::Server, agreement, own_options);
        clients.emplace_back(Role::Client, agreement, shared_options(false));
    }
    std::mt19937 random(7);
    for (int round = 0; round < 200; ++round) {
        const int connection = static_cast<int>(random() % kConnections);
        const auto message = message_for(static_cast<std::uint32_t>(round), 1 + random() % 3000);
        const auto payload = compress_one(shared[connection], message);
        CAPTURE(round);
        CHECK(payload == compress_one(own[connection], message));
        CHECK(inflate_one(clients[connection], payload) == message);
    }
}

TEST_CASE("deflate shared_compressor: one compressor per thread, several threads at once") {
    const auto options = shared_options();
    const auto agreement = agree(options);
    constexpr int kThreads = 4;
    std::vector<std::thread> threads;
    std::vector<int> failures(kThreads, 0);
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            PerMessageDeflate server(Role::Server, agreement, options);
            PerMessageDeflate client(Role::Client, agreement, shared_options(false));
            for (int i = 0; i < 300; ++i) {
                const auto message = message_for(static_cast<std::uint32_t>(t * 1000 + i), 2000);
                std::string payload;
                std::string back;
                if (!server.compress(message, payload) ||
                    client.decompress(payload, true, back, kUnlimited) != InflateStatus::Ok || back != message)
                    ++failures[t];
            }
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(failures == std::vector<int>(kThreads, 0));
}

TEST_CASE("deflate shared_compressor: with the client's no context takeover, the decompressor is freed and made again") {
    const auto options = shared_options();
    const auto agreement = agree(options, "permessage-deflate; client_no_context_takeover");
    REQUIRE(agreement.client_no_context_takeover);
    PerMessageDeflate server(Role::Server, agreement, options);
    PerMessageDeflate client(Role::Client, agreement, shared_options(false));
    for (int i = 0; i < 50; ++i) {
        const auto message = message_for(static_cast<std::uint32_t>(i), 100 + 37 * i);
        const auto payload = compress_one(client, message);
        // in pieces too: the stream made at the first piece lives to the message's end
        std::string back;
        const std::size_t half = payload.size() / 2;
        REQUIRE(server.decompress(std::string_view(payload).substr(0, half), false, back, kUnlimited) == InflateStatus::Ok);
        REQUIRE(server.decompress(std::string_view(payload).substr(half), true, back, kUnlimited) == InflateStatus::Ok);
        CHECK(back == message);
        CHECK(server.message_inflated_bytes() == 0);
    }
}
