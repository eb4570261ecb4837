#include "hub/streams/protocol.hpp"

#include <nlohmann/json.hpp>

#include "hub/json_depth.hpp"

namespace hub::streams {

namespace {

using Json = nlohmann::json;

// A JSON string literal for `text`; bytes that are not UTF-8 become U+FFFD rather than throw.
std::string json_string(std::string_view text) {
    return Json(std::string(text)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool valid_epoch(std::string_view epoch) {
    if (epoch.size() > kMaxEpochBytes) return false;
    for (char c : epoch)
        if (c <= ' ' || c > '~') return false;
    return true;
}

ProtocolError error(std::string code, std::string message, std::string op = {}, std::string channel = {}) {
    return ProtocolError{std::move(code), std::move(message), std::move(op), std::move(channel)};
}

// An offset: a JSON integer 0..2^64-1 (not 1.0, not "1", not negative).
std::optional<std::uint64_t> offset_of(const Json& value) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer() && value.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(value.get<std::int64_t>());
    return std::nullopt;
}

std::string trimmed_lower(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    std::string out(text);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

}  // namespace

bool valid_channel_name(std::string_view name, std::size_t max_bytes) { return !channel_name_problem(name, max_bytes); }

std::optional<std::string> channel_name_problem(std::string_view name, std::size_t max_bytes) {
    if (name.empty()) return "empty channel name";
    if (name.size() > max_bytes) return "channel name longer than " + std::to_string(max_bytes) + " bytes";
    for (char c : name) {
        const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                             c == '_' || c == '-' || c == ':' || c == '@' || c == '=' || c == '+' || c == '~';
        if (!allowed) return "a channel name may hold only A-Z a-z 0-9 . _ - : @ = + ~";
    }
    return std::nullopt;
}

std::variant<ClientOp, ProtocolError> parse_client_op(std::string_view text, std::size_t max_channel_bytes) {
    if (!json_depth_within(text)) return error("bad_json", "the frame nests deeper than 128 levels");
    const Json document = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) return error("bad_json", "the frame is not valid JSON");
    if (!document.is_object()) return error("bad_json", "a request is a JSON object with an \"op\"");
    const auto op_field = document.find("op");
    if (op_field == document.end() || !op_field->is_string())
        return error("bad_op", "\"op\" is missing or not a string (subscribe, unsubscribe or ack)");
    const std::string op = op_field->get<std::string>();
    if (op != "subscribe" && op != "unsubscribe" && op != "ack")
        return error("bad_op", "unknown op (subscribe, unsubscribe or ack)", op.size() <= 32 ? op : std::string{});

    // The channel first, so that every later error can name it.
    const auto channel_field = document.find("channel");
    if (channel_field == document.end() || !channel_field->is_string())
        return error("bad_channel", "\"channel\" is missing or not a string", op);
    std::string channel = channel_field->get<std::string>();
    if (const auto problem = channel_name_problem(channel, max_channel_bytes))
        return error("bad_channel", *problem, op, valid_channel_name(channel, 256) ? channel : std::string{});

    for (const auto& [key, value] : document.items()) {
        const bool known = key == "op" || key == "channel" || (op == "subscribe" && (key == "since" || key == "ack")) ||
                           (op == "ack" && key == "offset");
        if (!known) return error("bad_field", "unknown field \"" + (key.size() <= 32 ? key : key.substr(0, 32) + "...") + "\" for " + op, op, channel);
    }

    if (op == "unsubscribe") return ClientOp{UnsubscribeOp{std::move(channel)}};
    if (op == "ack") {
        const auto offset_field = document.find("offset");
        if (offset_field == document.end()) return error("bad_offset", "\"offset\" is missing", op, channel);
        const auto offset = offset_of(*offset_field);
        if (!offset) return error("bad_offset", "\"offset\" must be an integer >= 0", op, channel);
        return ClientOp{AckOp{std::move(channel), *offset}};
    }

    SubscribeOp subscribe{std::move(channel), std::nullopt, false};
    if (const auto ack = document.find("ack"); ack != document.end()) {
        if (!ack->is_boolean()) return error("bad_field", "\"ack\" must be true or false", op, subscribe.channel);
        subscribe.ack = ack->get<bool>();
    }
    if (const auto since = document.find("since"); since != document.end() && !since->is_null()) {
        if (!since->is_object()) return error("bad_since", "\"since\" must be {\"epoch\": ..., \"offset\": ...}", op, subscribe.channel);
        const auto epoch = since->find("epoch");
        const auto offset = since->find("offset");
        if (epoch == since->end() || !epoch->is_string())
            return error("bad_since", "\"since.epoch\" is missing or not a string", op, subscribe.channel);
        if (offset == since->end()) return error("bad_since", "\"since.offset\" is missing", op, subscribe.channel);
        if (since->size() != 2) return error("bad_since", "\"since\" has only \"epoch\" and \"offset\"", op, subscribe.channel);
        const auto& epoch_text = epoch->get_ref<const std::string&>();
        if (!valid_epoch(epoch_text))
            return error("bad_since", "\"since.epoch\" is at most 64 printable ASCII characters without spaces", op,
                         subscribe.channel);
        const auto value = offset_of(*offset);
        if (!value) return error("bad_since", "\"since.offset\" must be an integer >= 0", op, subscribe.channel);
        subscribe.since = Position{epoch_text, *value};
    }
    return ClientOp{std::move(subscribe)};
}

std::string encode_subscribed(std::string_view channel, const Position& position, std::optional<bool> recovered,
                              std::string_view reason, bool ack) {
    std::string out = R"({"type":"subscribed","channel":)" + json_string(channel) + R"(,"epoch":)" + json_string(position.epoch) +
                      R"(,"offset":)" + std::to_string(position.offset);
    if (recovered) {
        out += *recovered ? R"(,"recovered":true)" : R"(,"recovered":false)";
        if (!*recovered) out += R"(,"reason":)" + json_string(reason);
    }
    out += ack ? R"(,"ack":true})" : R"(,"ack":false})";
    return out;
}

std::string_view format_name(Format format) {
    switch (format) {
        case Format::Json: return "json";
        case Format::Binary: return "binary";
        case Format::Text: break;
    }
    return "text";
}

std::string encode_message(std::string_view channel, std::string_view epoch, std::uint64_t offset, Format format,
                           std::string_view data) {
    std::string out;
    out.reserve(96 + channel.size() + epoch.size() + data.size() + data.size() / 3);
    out += R"({"type":"message","channel":)";
    out += json_string(channel);
    out += R"(,"epoch":)";
    out += json_string(epoch);
    out += R"(,"offset":)";
    out += std::to_string(offset);
    out += R"(,"format":")";
    out += format_name(format);
    out += R"(","data":)";
    switch (format) {
        case Format::Text: out += json_string(data); break;
        case Format::Json: out += data; break;  // checked and made compact when it was published
        case Format::Binary:
            out += '"';
            out += base64(data);
            out += R"(","encoding":"base64")";
            break;
    }
    out += '}';
    return out;
}

std::string encode_unsubscribed(std::string_view channel, std::string_view reason) {
    std::string out = R"({"type":"unsubscribed","channel":)" + json_string(channel);
    if (!reason.empty()) out += R"(,"reason":)" + json_string(reason);
    return out + "}";
}

std::string encode_reset(std::string_view channel, const Position& position, std::string_view reason) {
    return R"({"type":"reset","channel":)" + json_string(channel) + R"(,"epoch":)" + json_string(position.epoch) + R"(,"offset":)" +
           std::to_string(position.offset) + R"(,"reason":)" + json_string(reason) + "}";
}

std::string encode_error(const ProtocolError& e) {
    std::string out = R"({"type":"error","error":)" + json_string(e.code) + R"(,"message":)" + json_string(e.message);
    if (!e.op.empty()) out += R"(,"op":)" + json_string(e.op);
    if (!e.channel.empty()) out += R"(,"channel":)" + json_string(e.channel);
    return out + "}";
}

std::string encode_notice(std::string_view notice, std::string_view channel, std::string_view message) {
    std::string out = R"({"type":"notice","notice":)" + json_string(notice);
    if (!channel.empty()) out += R"(,"channel":)" + json_string(channel);
    return out + R"(,"message":)" + json_string(message) + "}";
}

std::string base64(std::string_view bytes) {
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    const auto byte = [&](std::size_t at) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const std::uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (const std::size_t rest = bytes.size() - i; rest > 0) {
        const std::uint32_t v = (byte(i) << 16) | (rest == 2 ? byte(i + 1) << 8 : 0);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<Format> format_of_content_type(std::optional<std::string_view> content_type) {
    if (!content_type) return Format::Text;
    std::string_view value = *content_type;
    if (const auto semicolon = value.find(';'); semicolon != std::string_view::npos) value = value.substr(0, semicolon);
    const std::string media = trimmed_lower(value);
    if (media.empty()) return Format::Text;
    if (media == "application/json" || (media.size() > 5 && media.ends_with("+json"))) return Format::Json;
    if (media.starts_with("text/")) return Format::Text;
    if (media == "application/octet-stream") return Format::Binary;
    return std::nullopt;
}

std::optional<std::string> checked_body(Format format, std::string_view body, std::string& problem) {
    switch (format) {
        case Format::Text:
            if (!websock::codec::is_valid_utf8(body)) {
                problem = "a text message must be UTF-8";
                return std::nullopt;
            }
            return std::string(body);
        case Format::Json: {
            if (!json_depth_within(body)) {
                problem = "the JSON nests deeper than 128 levels";
                return std::nullopt;
            }
            const auto parsed = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);  // keeps key order
            if (parsed.is_discarded()) {
                problem = "the body is not valid JSON";
                return std::nullopt;
            }
            return parsed.dump();
        }
        case Format::Binary: return std::string(body);
    }
    problem = "unknown format";
    return std::nullopt;
}

std::string encode_payload(Format format, std::string_view data) {
    std::string out;
    out.reserve(1 + data.size());
    out.push_back(static_cast<char>(format));
    out.append(data);
    return out;
}

std::optional<Payload> decode_payload(std::string_view payload) {
    if (payload.empty()) return std::nullopt;
    const char tag = payload.front();
    if (tag != 't' && tag != 'j' && tag != 'b') return std::nullopt;
    return Payload{static_cast<Format>(tag), payload.substr(1)};
}

Route match_route(std::string_view path, std::string_view normalized_prefix) {
    if (!path.starts_with(normalized_prefix)) return {};
    std::string_view rest = path.substr(normalized_prefix.size());
    constexpr std::string_view kStreams = "streams";
    if (!rest.starts_with(kStreams)) return {};
    rest.remove_prefix(kStreams.size());
    if (rest.empty() || rest == "/") return Route{Route::Kind::Socket, {}};
    if (rest.front() != '/') return {};
    rest.remove_prefix(1);
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.empty() || rest.find('/') != std::string_view::npos) return {};
    return Route{Route::Kind::Channel, websock::percent_decode(rest)};
}

}  // namespace hub::streams
